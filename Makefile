# drove — see README.md. `make demo` runs the main job, `make test` the tests.

GO        ?= go
BIN       ?= bin/drove
FUZZTIME  ?= 10s
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS   := -s -w -X github.com/drove-project/drove/internal/version.Version=$(VERSION)

.PHONY: build test unit fuzz demo demo-images bench lint clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/drove

# The whole suite, under the race detector: unit and integration tests (real registry, skopeo,
# overlayfs when root), then every fuzz target for a short budget.
test: lint unit fuzz

unit:
	$(GO) test -race -count=1 -timeout 25m ./...

# Every fuzz target in the tree, FUZZTIME each (seed corpora live in
# testdata/fuzz/ beside each package). Each package's instrumented test
# binary is built once and runs all its targets: `go test -fuzz` would link
# it again for every target. Go's fuzzer sometimes ends with "context
# deadline exceeded" and no failing input when the time runs out
# mid-minimisation; such a run is tried once more. A real failure always
# writes its failing input and fails the build.
fuzz:
	@set -e; bin=$$(mktemp -d); trap 'rm -rf "$$bin"' EXIT; \
	for pkg in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  $(GO) test -c -fuzz=. -o "$$bin/fuzz.test" $$pkg; \
	  cache="$$($(GO) env GOCACHE)/fuzz/$$($(GO) list $$pkg)"; \
	  for t in $$(cat $$pkg/*_test.go | grep -o '^func Fuzz[A-Za-z0-9_]*' | sed 's/func //'); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    run="cd $$pkg && $$bin/fuzz.test -test.run='^$$' -test.fuzz='^$$t$$' -test.fuzztime=$(FUZZTIME) -test.fuzzcachedir=$$cache"; \
	    out=$$(sh -c "$$run" 2>&1) || { \
	      case "$$out" in *"Failing input written"*) echo "$$out"; exit 1;; esac; \
	      echo "  (go's fuzzer stopped without a failing input: $$(echo "$$out" | grep -m1 -v '^fuzz:' ); running it again)"; \
	      out=$$(sh -c "$$run" 2>&1) || { echo "$$out"; exit 1; }; \
	    }; \
	  done; \
	done

# The main job: a local lab of agents (network namespaces, root) gets a
# real 3-member etcd cluster from a cluster image, peer-to-peer.
demo: build
	./examples/etcd-demo.sh $(BIN)

# Cluster images: build, cache, save/load, push/pull, distribute.
demo-images: build
	./examples/demo.sh $(BIN)

bench: build
	$(BIN) bench build
	$(BIN) bench steps
	$(BIN) bench swarm --netns --nodes 16
	$(BIN) bench images --netns --nodes 16

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin
