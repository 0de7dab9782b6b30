// Command kube-controller-manager is the real kube-controller-manager
// v1.36.3. The end-to-end suite runs only its garbage collector (and
// namespace controller), so owner references really delete what they own.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
