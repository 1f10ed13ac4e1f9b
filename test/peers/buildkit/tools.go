//go:build tools

// Package peers only records the BuildKit commands that the test set-up builds, so that
// `go mod tidy` keeps their dependencies in go.mod/go.sum. It is never compiled:
//
//	go build -o <bin>/buildkitd github.com/moby/buildkit/cmd/buildkitd
//	go build -o <bin>/buildctl github.com/moby/buildkit/cmd/buildctl
package peers

import (
	_ "github.com/moby/buildkit/cmd/buildctl"
	_ "github.com/moby/buildkit/cmd/buildkitd"
)
