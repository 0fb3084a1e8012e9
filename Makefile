# A thin wrapper over CMake; the build logic lives in CMakeLists.txt.
BUILD ?= build
# The sanitizer build (ASan + UBSan) that `make test` also runs.
ASAN_BUILD ?= $(BUILD)/asan
# The libFuzzer build (clang-14, tests/fuzz) and how long each target runs:
# FUZZ_SECONDS under `make fuzz`, FUZZ_TEST_SECONDS under `make test`.
FUZZ_BUILD ?= $(BUILD)/fuzz
FUZZ_SECONDS ?= 120
FUZZ_TEST_SECONDS ?= 20
PREFIX ?= /usr/local
JOBS ?= 2

.PHONY: all deps configure build asan npm demo test install clean fuzz-build fuzz

all: build

deps:
	@bash .ci/deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

demo: build
	@./$(BUILD)/ibkr-mcp demo

# Interop tests need npm packages; they are installed into the build tree.
npm: deps
	@bash .ci/deps.sh --with-node
	@bash tests/interop/setup.sh $(BUILD)/npm
	@bash tests/interop/node22/setup.sh $(BUILD)/npm22

# Same sources and tests built with -DIM_SANITIZE=ON: any ASan, UBSan or
# LeakSanitizer report fails the test that triggered it. It shares the npm
# packages of $(BUILD).
asan: npm
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DIM_SANITIZE=ON \
	  -DIM_NPM_DIR=$(abspath $(BUILD))/npm -DIM_NPM22_DIR=$(abspath $(BUILD))/npm22 \
	  -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

# The libFuzzer targets (tests/fuzz) in their own clang tree: coverage,
# ASan and UBSan over the same src/*.c (not main.c), no test suite.
fuzz-build: deps
	@bash .ci/deps.sh --with-fuzz
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DIM_FUZZ=ON -DIM_BUILD_TESTS=OFF >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)

# Each target for FUZZ_SECONDS from the committed seeds; new inputs and any
# crash-* file stay under $(FUZZ_BUILD).
fuzz: fuzz-build
	@bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# Each fuzz target for a bounded time first (any crash fails), then the
# sanitizer tree's suite, then the normal one, whose ctest summary is the
# last thing printed; any of them failing fails `make test`.
test: build asan fuzz-build
	@echo "== fuzzing ($(FUZZ_TEST_SECONDS) s per target): $(FUZZ_BUILD)"
	@bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TEST_SECONDS)
	@echo "== sanitizer build (ASan + UBSan): $(ASAN_BUILD)"
	@cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS)
	@echo "== normal build: $(BUILD)"
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Benchmarks (never tests, never assert a timing): ibkr-mcp against a bare C
# stdio echo and an equivalent TypeScript SDK server, side by side in one
# run; prints figures and ratios and writes $(BUILD)/bench-summary.md.
.PHONY: bench
bench: build npm
	@bash tests/bench/run.sh $(BUILD)

install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD)
