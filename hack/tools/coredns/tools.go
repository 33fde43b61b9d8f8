//go:build tools

// Package tools pins CoreDNS, the real node's cluster DNS, that hack/tools/build.sh builds.
package tools

import (
	_ "github.com/coredns/coredns"
)
