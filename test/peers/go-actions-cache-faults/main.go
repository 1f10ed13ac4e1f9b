// Command go-actions-cache-faults drives the real github.com/tonistiigi/go-actions-cache (the library inside
// BuildKit's type=gha cache, pinned in go.mod) against the mock, for test/faults/go-actions-cache.test.ts.
// It only calls the library's public API; every decision (retries, waits, URL reloads) is the library's.
//
//	go-actions-cache-faults save <key> <size>   Save <size> deterministic bytes under <key>
//	go-actions-cache-faults load <key>          Load <key> and download it
//
// It reads ACTIONS_RESULTS_URL and ACTIONS_RUNTIME_TOKEN (ACTIONS_CACHE_API_FORCE_VERSION=v2) like BuildKit,
// prints one JSON line with the outcome on stdout, and the library's log on stderr.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"strconv"
	"time"

	actionscache "github.com/tonistiigi/go-actions-cache"
)

type result struct {
	Op        string `json:"op"`
	Key       string `json:"key"`
	OK        bool   `json:"ok"`
	Hit       bool   `json:"hit,omitempty"`
	Size      int    `json:"size,omitempty"`
	Sha256    string `json:"sha256,omitempty"`
	ElapsedMs int64  `json:"elapsedMs"`
	Error     string `json:"error,omitempty"`
}

func content(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func main() {
	actionscache.Log = log.Printf
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: go-actions-cache-faults save <key> <size> | load <key>")
		os.Exit(2)
	}
	op, key := os.Args[1], os.Args[2]
	res := result{Op: op, Key: key}
	start := time.Now()
	err := run(op, key, &res)
	res.ElapsedMs = time.Since(start).Milliseconds()
	if err != nil {
		res.Error = fmt.Sprintf("%+v", err)
	} else {
		res.OK = true
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}

func run(op, key string, res *result) error {
	ctx := context.Background()
	c, err := actionscache.TryEnv(actionscache.Opt{Timeout: 60 * time.Second})
	if err != nil {
		return err
	}
	if c == nil {
		return fmt.Errorf("no ACTIONS_RUNTIME_TOKEN")
	}
	switch op {
	case "save":
		if len(os.Args) < 4 {
			return fmt.Errorf("save needs a size")
		}
		size, err := strconv.Atoi(os.Args[3])
		if err != nil {
			return err
		}
		data := content(size)
		res.Size, res.Sha256 = size, digest(data)
		return c.Save(ctx, key, actionscache.NewBlob(data))
	case "load":
		entry, err := c.Load(ctx, key)
		if err != nil || entry == nil {
			return err
		}
		res.Hit = true
		var buf bytes.Buffer
		if err := entry.WriteTo(ctx, &buf); err != nil {
			return err
		}
		res.Size, res.Sha256 = buf.Len(), digest(buf.Bytes())
		return nil
	default:
		return fmt.Errorf("unknown op %q", op)
	}
}
