# pms — run `make run` to start it locally, `make test` to run the whole suite.
SHELL := /bin/bash
GO ?= go
BIN := bin/pms
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X github.com/pms-dev/pms/cmd.version=$(VERSION) -X github.com/pms-dev/pms/cmd.commit=$(COMMIT) -X github.com/pms-dev/pms/cmd.date=$(DATE)
SERVICES := deploy/services.sh

# libvips settings: glibc reads MALLOC_ARENA_MAX at start, so it belongs here.
export MALLOC_ARENA_MAX := 2
export VIPS_BLOCK_UNTRUSTED := 1
export CGO_ENABLED := 1

.PHONY: all build run stop deps-test deploy-tools check-deploy test test-versitygw test-short fuzz fuzz-smoke lint imports bench imagebench load migrate docker clean deps

all: build

deps: ## install what is missing (apt packages, Go modules)
	@$(SERVICES) install

build: ## build bin/pms
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

run: deps build ## start PostgreSQL and Redis for development, migrate, run pms all with console logs and a welcome
	@PMS_LOG_FORMAT=$${PMS_LOG_FORMAT:-console} $(SERVICES) dev bash -c '$(BIN) migrate up && exec $(BIN) all --welcome'

stop: ## stop the development services
	@$(SERVICES) stop

migrate: build ## apply pending migrations to the development database
	@$(SERVICES) dev $(BIN) migrate up

deps-test: deploy-tools ## install what is missing, and what only the tests need (chromium; the deploy checkers, once: ~8 min)
	@$(SERVICES) install-test

test: deps-test ## the whole suite, with the race detector, against private throwaway servers; then fuzz-smoke
	@$(SERVICES) test deploy/digest.sh $(GO) test -race -count=1 -timeout 15m ./...
	$(GO) test -count=1 -run 'PeakRSS' ./platform/vips/ # memory measurements, which the race detector would slow
	@$(MAKE) --no-print-directory fuzz-smoke

chaos: deps ## the chaos suite at full size: pms and its dependencies as processes, broken one at a time (RELIABILITY.md; ~15 min)
	@$(SERVICES) test $(GO) test -count=1 -timeout 30m -parallel 1 -run '^(TestChaos|TestScaleOut)$$' -v ./cmd/ -args -chaos.full

# FUZZTIME is how long fuzz-smoke runs each fuzz target.
FUZZTIME ?= 3s

fuzz-smoke: ## run every fuzz target in the module for FUZZTIME (3s) each; crashers land in testdata/fuzz
	@GO=$(GO) FUZZTIME=$(FUZZTIME) deploy/fuzz.sh

fuzz: ## run every fuzz target for 5 minutes each (or FUZZTIME=...)
	@$(MAKE) --no-print-directory fuzz-smoke FUZZTIME=$(if $(filter command line environment,$(origin FUZZTIME)),$(FUZZTIME),5m)

test-versitygw: deps ## the S3 tests against versitygw, a SigV4-checking gateway (builds it: minutes)
	command -v versitygw >/dev/null || test -x $$HOME/go/bin/versitygw || $(GO) install github.com/versity/versitygw/cmd/versitygw@v1.8.0
	$(GO) test -race -count=1 -tags versitygw -run Versitygw ./platform/s3/

test-short: ## unit tests only
	$(GO) test -short -count=1 ./...

lint: ## gofmt, go vet, staticcheck and the import-direction check (imports)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	@$(MAKE) --no-print-directory imports
	@echo lint clean

# PMS is the module path; imports checks the dependency direction with go list -deps.
PMS := github.com/pms-dev/pms
imports: ## the import-direction check: cmd → platform/* → product → product/account; imaging apart
	@fail=0; check() { bad=$$($(GO) list -deps $$1 | grep -E "^$(PMS)/($$2)$$" || true); \
	  if [ -n "$$bad" ]; then echo "$$1 must not import:"; echo "$$bad"; fail=1; fi; }; \
	  check './product/... ./imaging/...' '(platform|cmd|webhook)(/.*)?'; \
	  check './product/...' 'imaging(/.*)?'; \
	  check './imaging/...' 'product|product/account(/.*)?'; \
	  check './product/account/...' 'product|imaging(/.*)?|platform(/.*)?|cmd(/.*)?'; \
	  check './product/message/... ./product/correlation/...' 'product|product/account(/.*)?|imaging(/.*)?|platform(/.*)?|cmd(/.*)?'; \
	  check './webhook/...' 'imaging(/.*)?|platform(/.*)?|cmd(/.*)?'; \
	  exit $$fail

bench: deps ## benchmarks (see BENCHMARKS.md)
	@$(SERVICES) test $(GO) test -run '^$$' -bench . -benchmem ./...

# IMGPROXY_SRC is a local checkout of imgproxy v4 (its build needs libvips, no network but the
# Go module proxy); IMGPROXY_BIN a built binary instead. IMAGEBENCH_ARGS: -rounds, -conc, -corpus.
IMGPROXY_SRC ?=
IMGPROXY_BIN ?=
IMAGEBENCH_ARGS ?= -corpus ../shared/images

imagebench: ## the worker's default variants per image against vipsthumbnail and imgproxy (BENCHMARKS.md; IMGPROXY_SRC=checkout)
	@GO=$(GO) IMGPROXY_SRC=$(IMGPROXY_SRC) IMGPROXY_BIN=$(IMGPROXY_BIN) deploy/imagebench/run.sh $(IMAGEBENCH_ARGS)

load: deps build ## pms serve, PostgreSQL, Redis and the broker as pinned processes under wrk (BENCHMARKS.md); LOAD_ARGS=-h lists flags
	@$(SERVICES) load $(GO) run ./deploy/load -pms $(BIN) $(LOAD_ARGS)

# Checkers of the files in deploy/, pinned; go install builds them (promtool: several minutes).
PROMTOOL_VERSION := v0.316.0

KUBECONFORM_VERSION := v0.7.0
KUSTOMIZE_VERSION := v5.5.0

deploy-tools: ## install promtool, kubeconform and kustomize with go install, for check-deploy
	command -v promtool >/dev/null || test -x $$($(GO) env GOPATH)/bin/promtool || $(GO) install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)
	command -v kubeconform >/dev/null || test -x $$($(GO) env GOPATH)/bin/kubeconform || $(GO) install github.com/yannh/kubeconform/cmd/kubeconform@$(KUBECONFORM_VERSION)
	command -v kustomize >/dev/null || test -x $$($(GO) env GOPATH)/bin/kustomize || $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

check-deploy: deploy-tools ## check deploy/: alert rules (promtool), dashboard queries, kustomize build + kubeconform -strict, the compose file
	CI=1 $(GO) test -count=1 -run 'TestAlertRules|TestDashboard|TestKubernetesManifests|TestComposeFile' ./deploy/

docker: ## build the container image
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg DATE=$(DATE) -t pms:$(VERSION) .

clean:
	rm -rf bin
