//go:build tools

// Package tools pins the JobSet controller that hack/tools/build.sh builds.
package tools

import _ "sigs.k8s.io/jobset"
