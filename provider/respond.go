package provider

import (
	"context"

	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/objversion"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

// respond renders the objects from the answers and versions them: Vault
// objects first (their values feed the templates), then templates. The
// response lists the files of each written object in the class's order (an
// all-keys object's files sorted by key) and one version per written
// object; objects with writeFile: false add neither.
func (p *Provider) respond(ctx context.Context, cfg *config.Config, reqs []config.Request, answers map[string]*vault.Response, key []byte) (*pb.MountResponse, int, error) {
	objs := cfg.Objects
	files := make([][]file, len(objs))
	// values are what templates see, kept only when there is a template.
	var values map[string]any
	for i := range objs {
		if objs[i].IsTemplate() {
			values = make(map[string]any, len(objs))
			break
		}
	}
	for i := range objs {
		obj := &objs[i]
		if obj.IsTemplate() {
			continue
		}
		secret := answers[reqs[i].Key()].Secret
		if obj.IsAllKeys() {
			fs, err := renderAllKeys(obj, reqs[i].Path, secret)
			if err != nil {
				return nil, 0, err
			}
			if values != nil {
				m := make(map[string]string, len(fs))
				for _, f := range fs {
					m[f.key] = string(f.contents)
				}
				values[obj.ObjectName] = m
			}
			files[i] = fs
			continue
		}
		contents, err := render(obj, reqs[i].Path, secret)
		if err != nil {
			return nil, 0, err
		}
		if values != nil {
			values[obj.ObjectName] = string(contents)
		}
		files[i] = []file{{path: obj.ObjectName, contents: contents}}
	}
	templates := 0
	for i := range objs {
		if objs[i].IsTemplate() {
			templates++
		}
	}
	budget := newTemplateBudget(templates, p.maxResponseBytes())
	for i := range objs {
		obj := &objs[i]
		if !obj.IsTemplate() {
			continue
		}
		contents, err := renderTemplate(ctx, obj, values, budget.limits())
		if err != nil {
			return nil, 0, err
		}
		budget.spend(len(contents))
		files[i] = []file{{path: obj.ObjectName, contents: contents}}
	}
	for i := range objs {
		if !objs[i].Written() {
			files[i] = nil
		}
	}
	if err := checkFiles(objs, files); err != nil {
		return nil, 0, err
	}

	resp := &pb.MountResponse{
		Files:         make([]*pb.File, 0, len(objs)),
		ObjectVersion: make([]*pb.ObjectVersion, 0, len(objs)),
	}
	total := 0
	for i := range objs {
		obj := &objs[i]
		if !obj.Written() {
			continue
		}
		var (
			version string
			err     error
		)
		if obj.IsAllKeys() {
			vf := make([]objversion.File, len(files[i]))
			for j, f := range files[i] {
				vf[j] = objversion.File{Name: f.key, Contents: f.contents}
			}
			version, err = objversion.VersionFiles(key, obj, vf)
		} else {
			version, err = objversion.Version(key, obj, files[i][0].contents)
		}
		if err != nil {
			return nil, 0, &internalError{err}
		}
		mode := int32(obj.Mode(cfg.DefaultMode))
		for _, f := range files[i] {
			total += len(f.contents)
			resp.Files = append(resp.Files, &pb.File{Path: f.path, Mode: mode, Contents: f.contents})
		}
		resp.ObjectVersion = append(resp.ObjectVersion, &pb.ObjectVersion{Id: obj.ObjectName, Version: version})
	}
	return resp, total, nil
}
