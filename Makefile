# A thin wrapper over CMake; the build logic lives in CMakeLists.txt.
BUILD ?= build
# The sanitizer build (ASan + UBSan) that `make test` also runs.
ASAN_BUILD ?= $(BUILD)/asan
PREFIX ?= /usr/local
JOBS ?= 2

.PHONY: all deps configure build asan npm demo test install clean

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

# Same sources and tests built with -DIM_SANITIZE=ON: any ASan, UBSan or
# LeakSanitizer report fails the test that triggered it. It shares the npm
# packages of $(BUILD).
asan: npm
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DIM_SANITIZE=ON \
	  -DIM_NPM_DIR=$(abspath $(BUILD))/npm -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

# The sanitizer tree's suite first, then the normal one, whose ctest summary
# is the last thing printed; either failing fails `make test`.
test: build asan
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
