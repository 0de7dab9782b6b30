// Command kubelet plays the part of the kubelet for the end-to-end tests: it
// publishes and unpublishes a pod's inline CSI volume on the real Secrets
// Store CSI driver, building the request exactly as kubelet does for a
// CSIDriver with podInfoOnMount and tokenRequests: the pod's
// volumeAttributes, the csi.storage.k8s.io/* pod attributes, service account
// tokens requested through the TokenRequest API for the audiences the
// CSIDriver object lists, the nodePublishSecretRef's data, and a target path
// of kubelet's shape (.../pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount).
//
//	kubelet publish   -kubeconfig K -csi unix:///.../csi.sock -root DIR -namespace NS -pod P -volume V
//	kubelet unpublish -kubeconfig K -csi unix:///.../csi.sock -root DIR -namespace NS -pod P -volume V
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

const driverName = "secrets-store.csi.k8s.io"

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "publish" && os.Args[1] != "unpublish") {
		fmt.Fprintln(os.Stderr, "usage: kubelet publish|unpublish -kubeconfig K -csi ENDPOINT -root DIR -namespace NS -pod P -volume V")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig")
	endpoint := fs.String("csi", "", "driver socket, unix:///path")
	root := fs.String("root", "", "kubelet root directory")
	ns := fs.String("namespace", "default", "pod namespace")
	podName := fs.String("pod", "", "pod name")
	volume := fs.String("volume", "", "volume name")
	timeout := fs.Duration("timeout", 60*time.Second, "deadline of the CSI call")
	_ = fs.Parse(os.Args[2:])
	if *endpoint == "" || *root == "" || *podName == "" || *volume == "" {
		fmt.Fprintln(os.Stderr, "-csi, -root, -pod and -volume are required")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, os.Args[1], *kubeconfig, *endpoint, *root, *ns, *podName, *volume); err != nil {
		fmt.Fprintln(os.Stderr, "kubelet:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, verb, kubeconfig, endpoint, root, ns, podName, volume string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	pod, err := kube.CoreV1().Pods(ns).Get(ctx, podName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	var vol *corev1.Volume
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == volume && pod.Spec.Volumes[i].CSI != nil {
			vol = &pod.Spec.Volumes[i]
		}
	}
	if vol == nil {
		return fmt.Errorf("pod %s/%s has no csi volume %q", ns, podName, volume)
	}
	target := filepath.Join(root, "pods", string(pod.UID), "volumes", "kubernetes.io~csi", volume, "mount")
	sum := sha256.Sum256([]byte(string(pod.UID) + "/" + volume))
	volumeID := "csi-" + hex.EncodeToString(sum[:])

	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	node := csi.NewNodeClient(conn)

	if verb == "unpublish" {
		_, err := node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: volumeID, TargetPath: target})
		return err
	}

	attrs := map[string]string{}
	for k, v := range vol.CSI.VolumeAttributes {
		attrs[k] = v
	}
	// kubelet's podInfoOnMount attributes win over the pod author's.
	attrs["csi.storage.k8s.io/pod.name"] = pod.Name
	attrs["csi.storage.k8s.io/pod.namespace"] = pod.Namespace
	attrs["csi.storage.k8s.io/pod.uid"] = string(pod.UID)
	attrs["csi.storage.k8s.io/serviceAccount.name"] = pod.Spec.ServiceAccountName
	attrs["csi.storage.k8s.io/ephemeral"] = "true"

	drv, err := kube.StorageV1().CSIDrivers().Get(ctx, driverName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if len(drv.Spec.TokenRequests) > 0 {
		toks := map[string]any{}
		for _, tr := range drv.Spec.TokenRequests {
			exp := int64(3600)
			if tr.ExpirationSeconds != nil {
				exp = *tr.ExpirationSeconds
			}
			req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
				Audiences:         []string{tr.Audience},
				ExpirationSeconds: &exp,
				BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
			}}
			resp, err := kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, pod.Spec.ServiceAccountName, req, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("token for audience %q: %w", tr.Audience, err)
			}
			toks[tr.Audience] = map[string]any{"token": resp.Status.Token, "expirationTimestamp": resp.Status.ExpirationTimestamp.UTC().Format(time.RFC3339)}
		}
		b, _ := json.Marshal(toks)
		attrs["csi.storage.k8s.io/serviceAccount.tokens"] = string(b)
	}

	var secrets map[string]string
	if ref := vol.CSI.NodePublishSecretRef; ref != nil {
		sec, err := kube.CoreV1().Secrets(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		secrets = map[string]string{}
		for k, v := range sec.Data {
			secrets[k] = string(v)
		}
	}

	_, err = node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{
		VolumeId:   volumeID,
		TargetPath: target,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY},
		},
		Readonly:      true,
		VolumeContext: attrs,
		Secrets:       secrets,
	})
	if err != nil {
		return err
	}
	fmt.Println(target)
	return nil
}
