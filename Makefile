# Kurier — thin wrapper over Meson/Ninja. The two commands a new machine needs:
#   make run    install missing Debian packages, build, create a dev certificate and
#               store on first start, run kurierd with examples/kurierd.yml
#   make test   build with ASan+UBSan and run the unit and integration tests
# Other targets: build, build-test, unit, integration, clean.

CONFIG ?= examples/kurierd.yml
BUILD := build
BUILD_TEST := build-test

.PHONY: all run test build build-test unit integration deps deps-test clean

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

test: build-test
	@scripts/run-tests.sh all

clean:
	rm -rf $(BUILD) $(BUILD_TEST)
