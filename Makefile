# Thin wrapper over CMake. `make demo` and `make test` work on a fresh Debian 12 machine.
BUILD ?= build
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc)
# `make install PREFIX=/opt/sandbox DESTDIR=/tmp/stage`: docs/deploy.md.
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: all deps build test demo bench fuzz asan clean format tidy install package toolchain

all: build

deps:
	@./scripts/install-deps

$(BUILD)/build.ninja: CMakeLists.txt | deps
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)

build: $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# The engine and the second toolchain the toolchain tests use (Elixir 1.18.4,
# built once per machine from ../shared/toolchains when it is there) are
# built side by side.
test: $(BUILD)/build.ninja
	@mkdir -p $(BUILD); ./scripts/build-toolchain > $(BUILD)/toolchain.log 2>&1 & tc=$$!; \
	cmake --build $(BUILD) -j $(JOBS); built=$$?; \
	wait $$tc; toolchain=$$?; cat $(BUILD)/toolchain.log; \
	[ $$built -eq 0 ] && [ $$toolchain -eq 0 ]
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Elixir 1.18.4 for the toolchain tests and benchmarks (scripts/build-toolchain).
toolchain:
	./scripts/build-toolchain

# The engine, its worker's BEAM and the systemd units under $(DESTDIR)$(PREFIX).
install: $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target sandbox
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

# A Debian package (CPack) in $(BUILD)/: sandbox_<version>_<arch>.deb.
package: $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target sandbox
	cd $(BUILD) && cpack --config CPackConfig.cmake

# The demo runs only the command: build just it (and the worker it loads), not the tests.
demo: $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target sandbox
	./scripts/demo

bench: build
	./scripts/bench $(BUILD)

# ASan+UBSan build and test run in its own build tree.
asan:
	$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DSANDBOX_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"

fuzz: deps
	cmake -S . -B build-fuzz -G Ninja -DSANDBOX_FUZZ=ON -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++
	cmake --build build-fuzz -j $(JOBS) --target fuzz_beam fuzz_elixir_scan

format:
	clang-format -i $$(git ls-files 'src/*.cpp' 'src/*.h' 'tests/*.cpp' 'tests/*.h' 'bench/*.cpp' 'fuzz/*.cpp')

clean:
	rm -rf $(BUILD) build-asan build-fuzz
