# Kurier — thin wrapper over Meson/Ninja. The two commands a new machine needs:
#   make run    install missing Debian packages, build, create a dev certificate and
#               store on first start, run kurierd with examples/kurierd.yml
#   make test   build with ASan+UBSan and run the unit and integration tests
# Other targets: build, build-test, unit, integration, interop, clean.

CONFIG ?= examples/kurierd.yml
BUILD := build
BUILD_TEST := build-test

.PHONY: all run test build build-test unit integration interop deps deps-test clean bench fuzz

all: build

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=release -Dtests=disabled

$(BUILD_TEST)/build.ninja:
	meson setup $(BUILD_TEST) -Db_sanitize=address,undefined -Db_lundef=false

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

build-test: deps-test $(BUILD_TEST)/build.ninja
	ninja -C $(BUILD_TEST)

run: build
	@scripts/dev-setup.sh $(CONFIG) $(BUILD)
	exec $(BUILD)/kurierd -c $(CONFIG)

unit: build-test
	@scripts/run-tests.sh unit

integration: build-test
	@scripts/run-tests.sh integration

# Federation with real Prosody and ejabberd peers (root; tests/interop/README.md)
interop: build-test
	@scripts/run-tests.sh interop

# build: the release kurierd (jemalloc) that run-tests.sh's last part runs against.
test: build build-test
	@scripts/run-tests.sh all

# libFuzzer harnesses of tests/fuzz, FUZZ_SECONDS each, built with clang in build-fuzz/
# (scripts/fuzz.sh; tests/fuzz/README.md). New inputs go to each corpus/, crashes to crashes/.
FUZZ_SECONDS ?= 60
fuzz:
	@scripts/deps.sh fuzz
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh run

# Side-by-side benchmark against ejabberd and Prosody (root; installs them if missing);
# writes docs/PERFORMANCE.md. Short run: make bench QUICK=1. See scripts/bench.sh.
bench: build
	@scripts/bench.sh

clean:
	rm -rf $(BUILD) $(BUILD_TEST)
