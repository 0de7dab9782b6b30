// A tiny stand-in for monis.app/mlog, which secrets-store-csi-driver imports
// but which no module proxy serves. It implements, on klog, only what the
// driver calls. Used through a replace in ../go.mod; not a module of its own
// anywhere else.
module monis.app/mlog

go 1.22

require (
	github.com/go-logr/logr v1.4.3
	k8s.io/klog/v2 v2.120.1
)
