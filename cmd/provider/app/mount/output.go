package mount

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"text/tabwriter"

	secretsstorev1 "sigs.k8s.io/secrets-store-csi-driver/apis/v1"
	"sigs.k8s.io/secrets-store-csi-driver/pkg/util/fileutil"
	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vault-csi-provider/vault-csi-provider/config"
)

// dataLink is the atomic writer's link to the current payload directory.
const dataLink = "..data"

// checkOutDir accepts a missing or empty directory, or one holding an earlier
// mount. The driver's writer removes top-level entries named like the files
// it writes, so an arbitrary directory (say, the working directory) is
// refused.
func checkOutDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return usagef("-out: %v", err)
	}
	if !fi.IsDir() {
		return usagef("-out %s is not a directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return usagef("-out: %v", err)
	}
	if len(entries) == 0 {
		return nil
	}
	if li, err := os.Lstat(dir + string(os.PathSeparator) + dataLink); err == nil && li.Mode()&os.ModeSymlink != 0 {
		return nil
	}
	return usagef("-out %s is neither empty nor an earlier mount (no %s link): the driver's writer replaces what is there; give a new or empty directory", dir, dataLink)
}

// writeFiles writes the Mount's files as the driver does, with its atomic
// writer and path rules, into dir (created 0750, like the driver's target).
func writeFiles(dir string, files []*pb.File) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("-out: %w", err)
	}
	if err := fileutil.WritePayloads(dir, files); err != nil {
		return fmt.Errorf("writing the files to %s: %w", dir, err)
	}
	return nil
}

// report prints what was mounted: a summary line and one row per file. The
// value column shows the size unless showValues; shown values are Go-quoted,
// so control characters never reach the terminal raw.
func report(w io.Writer, pl *plan, cfg *config.Config, resp *pb.MountResponse, o *options) {
	where := fmt.Sprintf("%s at auth/%s", cfg.VaultAddress, cfg.AuthMountPath)
	if cfg.VaultNamespace != "" {
		where += ", namespace " + cfg.VaultNamespace
	}
	fmt.Fprintf(w, "Mounted SecretProviderClass %s/%s for pod %s/%s (service account %s, volume %s) as Vault role %q (%s).\n",
		pl.pod.namespace, pl.spc.Name, pl.pod.namespace, pl.pod.name, pl.pod.serviceAccount, pl.volume, cfg.RoleName, where)
	if o.out != "" {
		fmt.Fprintf(w, "Wrote %d files to %s with the driver's atomic writer.\n", len(resp.GetFiles()), o.out)
	}
	versions := make(map[string]string, len(resp.GetObjectVersion()))
	for _, v := range resp.GetObjectVersion() {
		versions[v.GetId()] = v.GetVersion()
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tMODE\tSIZE\tVERSION\tVALUE")
	for _, f := range resp.GetFiles() {
		fmt.Fprintf(tw, "%s\t%04o\t%d\t%s\t%s\n", f.GetPath(), os.FileMode(f.GetMode()).Perm(), len(f.GetContents()), versions[f.GetPath()], value(f.GetContents(), o.showValues))
	}
	tw.Flush()
}

func value(b []byte, show bool) string {
	if show {
		return strconv.Quote(string(b))
	}
	return fmt.Sprintf("<hidden, %d bytes>", len(b))
}

// secretObjectWarnings names the spec.secretObjects entries the driver could
// not sync to a Kubernetes Secret because no mounted file has their
// objectName.
func secretObjectWarnings(spc *secretsstorev1.SecretProviderClass, files []*pb.File) []string {
	have := make(map[string]bool, len(files))
	for _, f := range files {
		have[f.GetPath()] = true
	}
	var out []string
	for i, so := range spc.Spec.SecretObjects {
		if so == nil {
			continue
		}
		for j, d := range so.Data {
			if d != nil && !have[d.ObjectName] {
				out = append(out, fmt.Sprintf("spec.secretObjects[%d] (Secret %q) data[%d]: objectName %q is not a mounted file, so the driver cannot sync it", i, so.SecretName, j, d.ObjectName))
			}
		}
	}
	return out
}
