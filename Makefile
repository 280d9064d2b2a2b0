# detcd's make targets. `make run` and `make test` are the two a newcomer
# needs; see README.md.
GO ?= go
BIN := bin
DATA ?= data/default.etcd

.PHONY: all build run test test-short test-nested bench vet fmt clean etcd-ref sim

# A longer exploration than make test's fixed seeds: SIM_TIME of wall time
# over fresh seeds, two runs at a time; failures print the command that
# replays them.
SIM_TIME ?= 10m
sim:
	$(GO) build -tags invariants -o $(BIN)/detcd-sim ./cmd/detcd-sim
	$(BIN)/detcd-sim explore --time $(SIM_TIME) --parallel 2
	$(BIN)/detcd-sim explore --time $(SIM_TIME) --parallel 2 --members 5 --clients 12 --auth 2

# Issue 11's measure: statement coverage of server/ and grpcsvc/ reached
# by the simulator's tests alone, per file (most missed first) and in
# total. A few minutes; see scripts/simcover.
.PHONY: sim-cover
sim-cover:
	GO=$(GO) scripts/simcover

# The mutation suite: detcd-sim explore (default flags, --shrink 0,
# stopping at the first failure) on each bug a detcdbugs build can plant
# (core/bugs.go), for up to MUTANTS_BUDGET of wall time each; prints which
# checker caught each mutant, at which seed, how fast, and fails if one
# survives. MUTANTS_RUN=REGEX picks mutants by name. Logs and failures go
# to sim-mutants/. See scripts/mutants.
MUTANTS_BUDGET ?= 5m
MUTANTS_RUN ?= .
.PHONY: mutants
mutants:
	$(GO) build -tags detcdbugs,invariants -o $(BIN)/detcd-sim-bugs ./cmd/detcd-sim
	MUTANTS_BUDGET=$(MUTANTS_BUDGET) MUTANTS_RUN='$(MUTANTS_RUN)' scripts/mutants $(BIN)/detcd-sim-bugs

# The chaos suite (tests/chaos_test.go): a 3-member cluster of real
# detcd processes on loopback under CHAOS_DURATION of seeded faults (kill -9,
# SIGSTOP, partitions through proxies in front of the peer listeners, a
# member replaced through the Cluster API), then convergence,
# linearizability, durability and watch checks. make test runs a 30 s
# version. CHAOS_SEED=N reruns a schedule; CHAOS_FLAGS passes more, e.g.
# CHAOS_FLAGS='-chaos.faults=kill,pause'. A failure prints its rerun command.
# The large-store test (tests/largestore_test.go): one detcd member filled
# with LARGE_MB MB of 1 KiB values, a learner joined and promoted, a voter
# joined and restarted; each new member's peak RSS at most twice the
# leader's data dir, no put on the leader failing meanwhile, no leader
# change. A few minutes at the default: not part of make test.
LARGE_MB ?= 300
.PHONY: test-large
test-large:
	cd tests && $(GO) test -count=1 -timeout 60m -run 'TestLargeStore$$' -v -large.mb=$(LARGE_MB)

# The largest store etcd's quota allows, end to end (scripts/bench-huge;
# numbers in the README's Performance section): one detcd member with
# --quota-backend-bytes 8 GiB filled with HUGE_MB MiB of 64 KiB values,
# restarted, joined by a learner that is then promoted, backed up with
# etcdctl snapshot save, restored with detcd snapshot restore and started;
# times, peak RSS, data dirs, a probe writer's failures and the leader's
# term changes. 7-10 minutes here; needs 5 x HUGE_MB of free disk in
# /tmp and about 2.3 x HUGE_MB of free memory (leader and learner each
# hold the store in their heap). HUGE_SERVER=etcd runs etcd 3.7.3 the same
# way. Not part of make test.
HUGE_MB ?= 7424
HUGE_SERVER ?= detcd
.PHONY: bench-huge
bench-huge: build bench-tool
	@test -x $(BIN)/etcd-ref/etcd || $(MAKE) etcd-ref
	FILL_MB=$(HUGE_MB) scripts/bench-huge $(HUGE_SERVER)

CHAOS_DURATION ?= 5m
.PHONY: chaos
chaos:
	cd tests && $(GO) test -count=1 -timeout 60m -run 'TestChaos$$' -v -chaos.duration=$(CHAOS_DURATION) $(if $(CHAOS_SEED),-chaos.seed=$(CHAOS_SEED)) $(CHAOS_FLAGS)

all: build

build:
	$(GO) build -o $(BIN)/detcd ./cmd/detcd
	$(GO) build -o $(BIN)/detcd-sim ./cmd/detcd-sim

# A single-member server on 127.0.0.1:2379, data in ./data/default.etcd.
run: build
	$(BIN)/detcd --name default --data-dir $(DATA) \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster default=http://127.0.0.1:2380

# Everything CI runs: vet, the unit, property and end-to-end tests of the
# main module, then the nested module's differential and etcdctl tests.
# The simulator's tests and core's run with the invariants tag: deep checks
# of core's whole state (core/internal/invariants). chromium first, for the
# browser test of the simulator's pages.
test: vet chromium
	$(GO) test -count=1 $$($(GO) list ./... | grep -v '/sim$$')
	$(GO) test -count=1 -timeout 30m -tags invariants ./core/... ./sim/
	$(GO) test -count=1 -timeout 30m -tags detcdbugs,invariants -run 'TestPlantedBugs|TestSeedFiles' ./sim/
	$(MAKE) test-nested

# chromium (Debian's package), which the simulator's browser test loads
# its HTML pages in; a no-op when installed. See scripts/install-chromium.
.PHONY: chromium
chromium:
	scripts/install-chromium

test-nested:
	cd tests && $(GO) test -count=1 -timeout 20m ./...

# The main module only: seconds, not minutes.
test-short:
	$(GO) test ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

# Benchmarks: numbers to read, never pass/fail. `make bench` is the Go
# benchmarks of core and grpcsvc (~1 min), a short load run against detcd alone
# (~4 min, with the watch and lease loads) and a 3-member cluster of detcd
# side by side with one of etcd 3.7.3 (~2 min; +3 min to build
# bin/etcd-ref if missing); `make bench-compare` runs detcd
# and etcd 3.7.3 side by side on this machine (~14 min on 2 cores; +3 min to
# build bin/etcd-ref if missing). Extra flags for detcd-bench compare go in
# BENCH_FLAGS, e.g. BENCH_FLAGS='--rounds 1', or
# BENCH_FLAGS='--extra watch,watch-rate,lease' to add the watch and lease
# loads to bench-compare (~4 min more).
.PHONY: bench-go bench-load bench-cluster bench-compare bench-tool
bench: bench-go bench-load bench-cluster

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./core/... ./grpcsvc/

bench-tool:
	$(GO) build -o $(BIN)/detcd-bench ./cmd/detcd-bench

bench-load:
	GO=$(GO) scripts/bench-load $(BENCH_FLAGS)

bench-compare:
	GO=$(GO) scripts/bench-compare $(BENCH_FLAGS)

# Put, serializable and linearizable range with 256 clients on a fresh
# 3-member cluster of each server, one round each.
bench-cluster:
	GO=$(GO) scripts/bench-compare --rounds 0 --cluster-rounds 1 --memory=false $(BENCH_FLAGS)

# The real etcd 3.7.3, etcdctl and etcd's benchmark tool, for side-by-side
# runs.
etcd-ref:
	scripts/install-etcd $(BIN)/etcd-ref

# etcd v3.7.3's own e2e suites (tests/e2e, tests/common) run unchanged against detcd: a
# selection of kv, watch, lease, member, auth, maintenance, concurrency, gateway and server
# tests, or E2E_RUN=regexp. E2E_SERVER=etcd runs the same against the real etcd, so that
# a test failing on both is told apart (E2E_SERVER=both does the two). Long: not in make test.
# The last line is `e2e-etcd: P passed, F failed, S skipped`; per test in
# bin/e2e-etcd/results-*.txt. See scripts/e2e-etcd for the other knobs.
.PHONY: e2e-etcd
e2e-etcd:
	GO=$(GO) scripts/e2e-etcd

clean:
	rm -rf $(BIN) data
