// The port protocol's codec and framing against malformed, truncated and
// oversized input. Terms are produced by a real `erl` where that matters, so
// the decoder is checked against what the worker actually sends.

#include "util/fd.h"
#include "worker/protocol.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <string>
#include <thread>

namespace sandbox::worker {
namespace {

using namespace std::chrono_literals;

Deadline soon(std::chrono::milliseconds ms = 2000ms)
{
  return std::chrono::steady_clock::now() + ms;
}

struct Pipe {
  util::Fd read, write;
  Pipe()
  {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    read.reset(fds[0]);
    write.reset(fds[1]);
  }
};

// term_to_binary of an Erlang expression, computed by erl.
std::string erlang_term(const std::string& expression)
{
  std::string command = "erl -noshell -start_epmd false -eval '"
                        "io:put_chars(binary:encode_hex(term_to_binary(" +
                        expression + "))), halt().' 2>/dev/null";
  std::string hex;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    std::array<char, 4096> buffer{};
    while (std::size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe)) {
      hex.append(buffer.data(), n);
    }
    ::pclose(pipe);
  }
  std::string bytes;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return bytes;
}

TEST(Frames, RoundTrip)
{
  Pipe pipe;
  ASSERT_TRUE(write_frame(pipe.write.get(), "hello", soon()));
  auto frame = read_frame(pipe.read.get(), soon());
  ASSERT_TRUE(frame) << frame.error().detail;
  EXPECT_EQ(*frame, "hello");
}

TEST(Frames, EmptyPayload)
{
  Pipe pipe;
  ASSERT_TRUE(write_frame(pipe.write.get(), "", soon()));
  auto frame = read_frame(pipe.read.get(), soon());
  ASSERT_TRUE(frame);
  EXPECT_TRUE(frame->empty());
}

TEST(Frames, OversizedHeaderIsRefusedBeforeReading)
{
  Pipe pipe;
  std::string header = "\x7f\xff\xff\xff";
  ASSERT_EQ(::write(pipe.write.get(), header.data(), 4), 4);
  auto frame = read_frame(pipe.read.get(), soon(), 1024);
  ASSERT_FALSE(frame);
  EXPECT_EQ(frame.error().kind, FrameError::too_large);
}

TEST(Frames, FrameJustOverTheLimit)
{
  Pipe pipe;
  auto bytes = make_frame(std::string(1025, 'x'));
  ASSERT_EQ(::write(pipe.write.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  auto frame = read_frame(pipe.read.get(), soon(), 1024);
  ASSERT_FALSE(frame);
  EXPECT_EQ(frame.error().kind, FrameError::too_large);
}

TEST(Frames, TruncatedPayload)
{
  Pipe pipe;
  auto bytes = make_frame("a whole payload");
  ASSERT_EQ(::write(pipe.write.get(), bytes.data(), 8), 8);
  pipe.write.reset();
  auto frame = read_frame(pipe.read.get(), soon());
  ASSERT_FALSE(frame);
  EXPECT_EQ(frame.error().kind, FrameError::truncated);
}

TEST(Frames, TruncatedHeader)
{
  Pipe pipe;
  ASSERT_EQ(::write(pipe.write.get(), "\0\0", 2), 2);
  pipe.write.reset();
  auto frame = read_frame(pipe.read.get(), soon());
  ASSERT_FALSE(frame);
  EXPECT_EQ(frame.error().kind, FrameError::truncated);
}

TEST(Frames, CleanEndOfFile)
{
  Pipe pipe;
  pipe.write.reset();
  auto frame = read_frame(pipe.read.get(), soon());
  ASSERT_FALSE(frame);
  EXPECT_EQ(frame.error().kind, FrameError::closed);
}

TEST(Frames, SilentPeerTimesOut)
{
  Pipe pipe;
  auto frame = read_frame(pipe.read.get(), soon(100ms));
  ASSERT_FALSE(frame);
  EXPECT_EQ(frame.error().kind, FrameError::timeout);
}

TEST(Frames, SlowWriterInPieces)
{
  Pipe pipe;
  auto bytes = make_frame(std::string(100'000, 'y'));
  std::thread writer([&] {
    for (std::size_t i = 0; i < bytes.size(); i += 7000) {
      auto n = std::min<std::size_t>(7000, bytes.size() - i);
      ASSERT_EQ(::write(pipe.write.get(), bytes.data() + i, n), static_cast<ssize_t>(n));
      std::this_thread::sleep_for(1ms);
    }
  });
  auto frame = read_frame(pipe.read.get(), soon());
  writer.join();
  ASSERT_TRUE(frame);
  EXPECT_EQ(frame->size(), 100'000u);
}

// An encoded term as erl reads it, printed with ~w (binaries as their bytes).
std::string erlang_reading(const std::string& bytes)
{
  std::string hex;
  for (unsigned char c : bytes) {
    static constexpr char digits[] = "0123456789ABCDEF";
    hex.push_back(digits[c >> 4]);
    hex.push_back(digits[c & 15]);
  }
  std::string command = "erl -noshell -start_epmd false -eval '"
                        "io:format(\"~w\", [binary_to_term(binary:decode_hex(<<\"" +
                        hex + "\">>))]), halt().' 2>/dev/null";
  std::string out;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    std::array<char, 4096> buffer{};
    while (std::size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe)) {
      out.append(buffer.data(), n);
    }
    ::pclose(pipe);
  }
  return out;
}

TEST(Codec, RequestsDecodeInErlang)
{
  CompileRequest request{"/sandbox", "/job/out-1", {"lib/a.ex", "lib/\xc3\xa9.ex"}, true, false, {}};
  auto bytes = encode_compile(request);
  EXPECT_EQ(erlang_reading(bytes),
            "{compile_files,<<47,115,97,110,100,98,111,120>>,<<47,106,111,98,47,111,117,116,45,49>>,"
            "[<<108,105,98,47,97,46,101,120>>,<<108,105,98,47,195,169,46,101,120>>],"
            "[{debug_info,true},{parallel,false}]}");
  EXPECT_EQ(erlang_reading(encode_hello()), "{hello,1}");
}

TEST(Codec, CodePathsAreAnOption)
{
  CompileRequest request{"/sandbox", "/o", {"a.ex"}, false, true, {"/job/prior-1", "/p"}};
  EXPECT_EQ(erlang_reading(encode_compile(request)),
            "{compile_files,<<47,115,97,110,100,98,111,120>>,<<47,111>>,[<<97,46,101,120>>],"
            "[{debug_info,false},{parallel,true},"
            "{code_path,[<<47,106,111,98,47,112,114,105,111,114,45,49>>,<<47,112>>]}]}");
}

TEST(Codec, HygieneRequestsAndReplies)
{
  EXPECT_EQ(erlang_reading(encode_check(50000, 1048576)), "{check,50000,1048576}");
  EXPECT_EQ(erlang_reading(encode_loaded_modules()), "{loaded_modules}");
  auto clean = decode_check_reply(erlang_term("ok"));
  ASSERT_TRUE(clean) << clean.error();
  EXPECT_TRUE(clean->clean);
  auto dirty = decode_check_reply(erlang_term("{dirty, <<\"processes differ\">>}"));
  ASSERT_TRUE(dirty) << dirty.error();
  EXPECT_FALSE(dirty->clean);
  EXPECT_EQ(dirty->difference, "processes differ");
  for (const char* bad : {"okay", "{dirty, processes}", "{dirty, <<\"a\">>, 1}", "{failed, <<\"x\">>}"}) {
    EXPECT_FALSE(decode_check_reply(erlang_term(bad))) << bad;
  }
  auto modules = decode_loaded_modules(erlang_term("{modules, [<<\"lists\">>, <<\"Elixir.Enum\">>]}"));
  ASSERT_TRUE(modules) << modules.error();
  EXPECT_EQ(*modules, (std::vector<std::string>{"lists", "Elixir.Enum"}));
  EXPECT_FALSE(decode_loaded_modules(erlang_term("{modules, [lists]}")));
}

TEST(Codec, HelloFromErlang)
{
  auto bytes = erlang_term("{hello, 1, <<\"25\">>, <<\"1.14.0\">>}");
  ASSERT_FALSE(bytes.empty()) << "erl did not run";
  auto hello = decode_hello(bytes);
  ASSERT_TRUE(hello) << hello.error();
  EXPECT_EQ(hello->version, 1);
  EXPECT_EQ(hello->otp_release, "25");
  EXPECT_EQ(hello->elixir_version, "1.14.0");
}

TEST(Codec, OkReplyFromErlang)
{
  auto bytes = erlang_term(
    "{ok, [{<<\"A.B\">>, <<\"/job/out-1/Elixir.A.B.beam\">>}],"
    " [{<<\"lib/a.ex\">>, 3, 0, warning, <<\"unused variable\">>}],"
    " [{<<\"lib/a.ex\">>, [<<\"A.B\">>], [<<\"C\">>], [<<\"D\">>], [<<\":lists\">>], [<<\"README.md\">>]}]}");
  auto reply = decode_compile_reply(bytes);
  ASSERT_TRUE(reply) << reply.error();
  EXPECT_EQ(reply->status, CompileReply::Status::ok);
  ASSERT_EQ(reply->modules.size(), 1u);
  EXPECT_EQ(reply->modules[0].name, "A.B");
  ASSERT_EQ(reply->warnings.size(), 1u);
  EXPECT_EQ(reply->warnings[0].line, 3);
  EXPECT_EQ(reply->warnings[0].severity, core::Severity::warning);
  ASSERT_EQ(reply->references.size(), 1u);
  EXPECT_EQ(reply->references[0].compile_refs, std::vector<std::string>{"C"});
  EXPECT_EQ(reply->references[0].export_refs, std::vector<std::string>{"D"});
  EXPECT_EQ(reply->references[0].runtime_refs, std::vector<std::string>{":lists"});
  EXPECT_EQ(reply->references[0].external_resources, std::vector<std::string>{"README.md"});
}

TEST(Codec, ErrorAndFailedRepliesFromErlang)
{
  auto error = decode_compile_reply(
    erlang_term("{error, [{<<\"a.ex\">>, 1, 2, error, <<\"boom\">>}], [], []}"));
  ASSERT_TRUE(error) << error.error();
  EXPECT_EQ(error->status, CompileReply::Status::error);
  ASSERT_EQ(error->errors.size(), 1u);
  EXPECT_EQ(error->errors[0].column, 2);
  auto failed = decode_compile_reply(erlang_term("{failed, <<\"oops\">>}"));
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->status, CompileReply::Status::failed);
  EXPECT_EQ(failed->failure, "oops");
}

TEST(Codec, WrongShapesAreErrors)
{
  for (const char* expression :
       {"ok", "{ok}", "{ok, [], [], [], extra}", "{ok, not_a_list, [], []}",
        "{ok, [{<<\"A\">>}], [], []}", "{ok, [], [{<<\"f\">>, x, 0, warning, <<>>}], []}",
        "{ok, [{\"charlist\", <<\"p\">>}], [], []}", "{hello, 1, <<>>, <<>>}", "[1,2,3]",
        "{ok, [], [], [{<<\"f\">>, [], [], [], []}]}", "<<1,2,3>>", "{ok, [], [] , [] }"}) {
    auto bytes = erlang_term(expression);
    ASSERT_FALSE(bytes.empty()) << expression;
    auto reply = decode_compile_reply(bytes);
    if (std::string(expression) == "{ok, [], [] , [] }") {
      EXPECT_TRUE(reply) << expression; // the one well-formed reply
    } else {
      EXPECT_FALSE(reply) << expression;
    }
  }
}

TEST(Codec, GarbageAndTruncationNeverReadPastTheEnd)
{
  auto good = erlang_term(
    "{ok, [{<<\"A.B\">>, <<\"/job/out-1/Elixir.A.B.beam\">>}], [], "
    "[{<<\"lib/a.ex\">>, [<<\"A.B\">>], [], [], [], []}]}");
  ASSERT_FALSE(good.empty());
  ASSERT_TRUE(decode_compile_reply(good));
  // Every prefix is malformed (and must not read beyond its end).
  for (std::size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(decode_compile_reply(good.substr(0, n))) << n;
  }
  // A binary whose length field claims more than there is.
  auto lying = good;
  auto pos = lying.find('m'); // BINARY_EXT
  ASSERT_NE(pos, std::string::npos);
  lying[pos + 1] = '\x7f';
  EXPECT_FALSE(decode_compile_reply(lying));
  // Arbitrary bytes.
  std::string noise;
  for (int i = 0; i < 4096; ++i) {
    noise.push_back(static_cast<char>((i * 7919) & 0xff));
  }
  EXPECT_FALSE(decode_compile_reply(noise));
  EXPECT_FALSE(decode_hello(noise));
  EXPECT_FALSE(decode_hello(""));
}

} // namespace
} // namespace sandbox::worker
