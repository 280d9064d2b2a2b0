# detcd's make targets. `make run` and `make test` are the two a newcomer
# needs; see README.md.
GO ?= go
BIN := bin
DATA ?= data/default.etcd

.PHONY: all build run test test-short test-nested bench vet fmt clean etcd-ref

all: build

build:
	$(GO) build -o $(BIN)/detcd ./cmd/detcd

# A single-member server on 127.0.0.1:2379, data in ./data/default.etcd.
run: build
	$(BIN)/detcd --name default --data-dir $(DATA) \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster default=http://127.0.0.1:2380

# Everything CI runs: vet, the unit, property and end-to-end tests of the
# main module, then the nested module's differential and etcdctl tests.
test: vet
	$(GO) test -count=1 ./...
	$(MAKE) test-nested

test-nested:
	cd tests && $(GO) test -count=1 -timeout 20m ./...

# The main module only: seconds, not minutes.
test-short:
	$(GO) test ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./core/...

# The real etcd 3.7.3, etcdctl and etcd's benchmark tool, for side-by-side
# runs.
etcd-ref:
	scripts/install-etcd $(BIN)/etcd-ref

clean:
	rm -rf $(BIN) data
