package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Postgres is a throwaway PostgreSQL cluster listening on 127.0.0.1.
type Postgres struct {
	Port     int
	Password string // of the "postgres" superuser
	dir      string
	bin      string
	asUser   string
}

// pgBinDir finds initdb/pg_ctl: $PATH first, then Debian's layout.
func pgBinDir() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real), nil
		}
		return filepath.Dir(p), nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(matches) == 0 {
		return "", fmt.Errorf("PostgreSQL not installed: apt-get install postgresql")
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

// PostgresInstalled says why StartPostgres cannot work here, or nil: callers
// tell a machine without PostgreSQL from a cluster that failed to start.
func PostgresInstalled() error {
	_, err := pgBinDir()
	return err
}

// StartPostgres initialises and starts a cluster in a temporary directory.
// PostgreSQL refuses to run as root, so as root it runs as the "postgres"
// user that Debian's package creates.
func StartPostgres(ctx context.Context) (*Postgres, error) {
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "vcp-pg-")
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	pg := &Postgres{Port: port, Password: "pg-" + randomHex(12), dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		pg.asUser = "postgres"
	}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(pg.Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if pg.asUser != "" {
		u, _ := user.Lookup(pg.asUser)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		_ = os.Chown(pwfile, uid, gid)
	}
	data := filepath.Join(dir, "data")
	if out, err := pg.run(ctx, "initdb", "-D", data, "-U", "postgres", "--pwfile="+pwfile, "--auth=scram-sha-256", "--no-sync"); err != nil {
		pg.Stop()
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off", port, dir)
	if out, err := pg.run(ctx, "pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "start"); err != nil {
		pg.Stop()
		return nil, fmt.Errorf("pg_ctl start: %v: %s; log: %s", err, out, tail(filepath.Join(dir, "log")))
	}
	return pg, nil
}

func (pg *Postgres) run(ctx context.Context, tool string, args ...string) (string, error) {
	path := filepath.Join(pg.bin, tool)
	var cmd *exec.Cmd
	if pg.asUser != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", pg.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = pg.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// URL is a connection URL template for Vault's database engine.
func (pg *Postgres) VaultConnectionURL() string {
	return fmt.Sprintf("postgresql://{{username}}:{{password}}@127.0.0.1:%d/postgres?sslmode=disable", pg.Port)
}

// Query runs SQL through psql as user/password and returns its output.
func (pg *Postgres) Query(ctx context.Context, user, password, sql string) (string, error) {
	psql := filepath.Join(pg.bin, "psql")
	if _, err := os.Stat(psql); err != nil {
		psql = "psql"
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, psql, "-h", "127.0.0.1", "-p", strconv.Itoa(pg.Port), "-U", user, "-d", "postgres", "-tAc", sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Stop shuts the cluster down and removes it.
func (pg *Postgres) Stop() {
	data := filepath.Join(pg.dir, "data")
	if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, _ = pg.run(ctx, "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
		cancel()
	}
	os.RemoveAll(pg.dir)
}
