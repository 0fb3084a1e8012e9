# A thin wrapper over CMake; the build logic lives in CMakeLists.txt.
BUILD ?= build
PREFIX ?= /usr/local
JOBS ?= 2

.PHONY: all deps configure build demo test install clean

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

test: build npm
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD)
