// Command kube-apiserver is the real Kubernetes API server (k8s.io/kubernetes
// v1.36.3), built from its Go module so the end-to-end tests run against a
// genuine API server without downloading a release binary or a container.
//
// One flag of ours is added: --embedded-etcd-dir=DIR starts an etcd server
// (go.etcd.io/etcd/server/v3/embed, the version Kubernetes pins) inside this
// process, storing its data in DIR and listening on free ports of 127.0.0.1
// only, and points the API server at it with --etcd-servers. The flag is
// removed before the remaining arguments reach the API server. Without it the
// binary is the plain kube-apiserver.
package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // for timeZone support in CronJob, as upstream's main

	"go.etcd.io/etcd/server/v3/embed"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format, as upstream's main
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as upstream's main
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as upstream's main
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

const (
	etcdDirFlag      = "--embedded-etcd-dir"
	etcdReadyTimeout = 60 * time.Second
	etcdStartTries   = 5
)

func main() {
	os.Exit(run())
}

func run() int {
	dir, args, err := extractFlag(os.Args[1:], etcdDirFlag)
	if err != nil {
		return fail("%v", err)
	}

	if dir != "" {
		for _, a := range args {
			if a == "--etcd-servers" || strings.HasPrefix(a, "--etcd-servers=") {
				return fail("%s and --etcd-servers are mutually exclusive", etcdDirFlag)
			}
		}
		etcd, clientURL, err := startEtcd(dir)
		if err != nil {
			return fail("embedded etcd: %v", err)
		}
		defer etcd.Close()
		fmt.Fprintf(os.Stderr, "embedded etcd ready at %s (data in %s)\n", clientURL, dir)
		args = append([]string{"--etcd-servers=" + clientURL}, args...)

		go func() {
			// etcd failing under a running API server is fatal: exit
			// rather than serve storage errors forever. Errors are not
			// reported once etcd.Close has begun.
			for err := range etcd.Err() {
				if err != nil {
					fail("embedded etcd failed: %v", err)
					os.Exit(1)
				}
			}
		}()
	}

	// The API server's command reads its flags from cobra's args; keep
	// os.Args consistent for anything that looks there.
	os.Args = append([]string{os.Args[0]}, args...)
	command := app.NewAPIServerCommand()
	command.SetArgs(args)
	return cli.Run(command)
}

// extractFlag removes every occurrence of name (as "name=value" or
// "name value") from args, up to a "--", and returns the last value given and
// the remaining arguments in order.
func extractFlag(args []string, name string) (string, []string, error) {
	var value string
	rest := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return value, append(rest, args[i:]...), nil
		case strings.HasPrefix(a, name+"="):
			value = strings.TrimPrefix(a, name+"=")
		case a == name:
			if i+1 >= len(args) {
				return "", nil, fmt.Errorf("flag %s needs a value", name)
			}
			i++
			value = args[i]
		default:
			rest = append(rest, a)
			continue
		}
		if value == "" {
			return "", nil, fmt.Errorf("flag %s needs a non-empty value", name)
		}
	}
	return value, rest, nil
}

// startEtcd starts a single-member etcd storing its data in dir, with client
// and peer listeners on free ports of 127.0.0.1, and waits until it serves.
// A port picked free can be taken before etcd binds it: retry a few times.
func startEtcd(dir string) (*embed.Etcd, string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	var lastErr error
	for try := 0; try < etcdStartTries; try++ {
		e, clientURL, err := startEtcdOnce(dir)
		if err == nil {
			return e, clientURL, nil
		}
		lastErr = err
		if !isAddrInUse(err) {
			break
		}
	}
	return nil, "", lastErr
}

func startEtcdOnce(dir string) (*embed.Etcd, string, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, "", err
	}
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", fmt.Sprint(ports[0]))}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", fmt.Sprint(ports[1]))}

	cfg := embed.NewConfig()
	cfg.Name = "embedded"
	cfg.Dir = dir
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{"stderr"}
	// A throw-away test cluster: durability across power loss does not
	// matter, and fsync on a busy 2-core machine makes etcd slow.
	cfg.UnsafeNoFsync = true

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, clientURL.String(), nil
	case err := <-e.Err():
		e.Close()
		return nil, "", err
	case <-time.After(etcdReadyTimeout):
		e.Server.Stop()
		e.Close()
		return nil, "", fmt.Errorf("not ready after %s", etcdReadyTimeout)
	}
}

// freePorts returns n distinct TCP ports of 127.0.0.1 that were free a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func isAddrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

// fail reports an error of ours on stderr and returns exit code 1.
func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "kube-apiserver: "+format+"\n", args...)
	return 1
}
