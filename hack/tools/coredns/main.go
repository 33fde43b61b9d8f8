// Command coredns is CoreDNS (github.com/coredns/coredns, pinned in go.mod) with only the
// plugins the real test node's Corefile uses (hack/cluster/nodeconfig.py corefile): the
// upstream main imports every plugin, and with them the SDKs of every cloud DNS service,
// which made its build the slowest of all the test tools.
package main

import (
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/template"

	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
