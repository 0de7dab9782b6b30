// Command vault is the real HashiCorp Vault server, built from its Go module so
// the project's tests and demo run against genuine Vault without downloading a
// release binary.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
