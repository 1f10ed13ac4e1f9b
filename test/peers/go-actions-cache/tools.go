//go:build tools

// Package peers only records the library whose tests are run, so that go.sum pins its checksum.
package peers

import _ "github.com/tonistiigi/go-actions-cache"
