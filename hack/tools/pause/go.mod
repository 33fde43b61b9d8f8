// The pod sandbox ("pause") program of the test node's local sandbox image
// (hack/cluster/images.py); standard library only, so no go.sum.
module arcx.local/hack/tools/pause

go 1.24.0
