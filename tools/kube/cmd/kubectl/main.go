// Command kubectl is the real kubectl v1.36.3, built from k8s.io/kubernetes
// in this module (Debian's kubernetes-client is far older and lacks
// `kubectl create token`). It is upstream's cmd/kubectl main, unchanged.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"

	_ "k8s.io/client-go/plugin/pkg/client/auth" // client auth plugins, as upstream
)

func main() {
	// Set the log verbosity before the command is built, as upstream does:
	// building it already logs (plugins, .kuberc).
	logs.GlogSetter(cmd.GetLogVerbosity(os.Args)) //nolint:errcheck
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
