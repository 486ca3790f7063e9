package deploy

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	// gopkg.in/yaml.v3 parses docker-compose.yml: a test that reads YAML
	// needs a YAML parser, and this is the well-kept standard one (test-only;
	// the bridge binary does not link it).
	"gopkg.in/yaml.v3"
)

const (
	containerPort = "8098"
	containerBind = "0.0.0.0:" + containerPort
)

// composeFile is the part of a compose file these tests look at.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Build       any       `yaml:"build"`
	Ports       []any     `yaml:"ports"` // short "host:port:port" strings or long-syntax maps
	Environment any       `yaml:"environment"`
	Healthcheck *struct { // test is a string or a list
		Test     any    `yaml:"test"`
		Interval string `yaml:"interval"`
		Timeout  string `yaml:"timeout"`
		Retries  int    `yaml:"retries"`
	} `yaml:"healthcheck"`
	Restart string `yaml:"restart"`
}

func readCompose(t *testing.T) composeService {
	t.Helper()
	b, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	svc, ok := f.Services["bridge"]
	if !ok {
		t.Fatalf("docker-compose.yml has no service \"bridge\" (services: %v)", keys(f.Services))
	}
	return svc
}

func TestComposeBridgeService(t *testing.T) {
	svc := readCompose(t)
	if svc.Build == nil {
		t.Error("service bridge: no build (want build: .)")
	}
	if svc.Restart != "unless-stopped" {
		t.Errorf("service bridge: restart %q, want unless-stopped", svc.Restart)
	}
}

func TestComposePublishesOnLoopback(t *testing.T) {
	svc := readCompose(t)
	var found bool
	for _, p := range svc.Ports {
		hostIP, target := "", ""
		switch p := p.(type) {
		case string: // [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]
			parts := strings.Split(strings.TrimSuffix(p, "/tcp"), ":")
			target = parts[len(parts)-1]
			if len(parts) == 3 {
				hostIP = parts[0]
			}
		case map[string]any: // long syntax
			hostIP, _ = p["host_ip"].(string)
			target = scalar(p["target"])
		default:
			t.Errorf("ports entry %v (%T): want a string or a map", p, p)
			continue
		}
		if target != containerPort {
			continue
		}
		found = true
		if hostIP != "127.0.0.1" {
			t.Errorf("container port %s is published on %q, want 127.0.0.1 only (a bridge reachable from the network needs more than this file)", containerPort, hostIP)
		}
	}
	if !found {
		t.Errorf("service bridge does not publish container port %s (ports: %v)", containerPort, svc.Ports)
	}
}

func TestComposeHealthcheck(t *testing.T) {
	svc := readCompose(t)
	hc := svc.Healthcheck
	if hc == nil {
		t.Fatal("service bridge: no healthcheck")
	}
	var test []string
	switch v := hc.Test.(type) {
	case string:
		test = append([]string{"CMD-SHELL"}, strings.Fields(v)...)
	case []any:
		for _, a := range v {
			test = append(test, scalar(a))
		}
	}
	if len(test) < 3 || test[0] != "CMD" || test[1] != "/bridge" || test[2] != "health" {
		t.Errorf("healthcheck test %q: want [\"CMD\", \"/bridge\", \"health\", …] (exec form: the image has no shell)", test)
	}
	checkHealthAddr(t, "compose healthcheck", test[min(3, len(test)):])
	if hc.Interval == "" || hc.Timeout == "" || hc.Retries <= 0 {
		t.Errorf("healthcheck: interval %q, timeout %q, retries %d: want all three set", hc.Interval, hc.Timeout, hc.Retries)
	}
}

func TestComposeRequiresToken(t *testing.T) {
	svc := readCompose(t)
	env := map[string]string{}
	switch v := svc.Environment.(type) {
	case map[string]any:
		for k, x := range v {
			env[k] = scalar(x)
		}
	case []any:
		for _, x := range v {
			k, val, _ := strings.Cut(scalar(x), "=")
			env[k] = val
		}
	}
	tok, ok := env["BRIDGE_TOKEN"]
	if !ok {
		t.Fatalf("service bridge: no BRIDGE_TOKEN in environment (the bridge refuses a non-loopback bind without a token)")
	}
	if !regexp.MustCompile(`^\$\{BRIDGE_TOKEN:\?[^}]*\}$`).MatchString(tok) {
		t.Errorf("BRIDGE_TOKEN: %q, want ${BRIDGE_TOKEN:?message} so compose refuses to start without it", tok)
	}
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case
	args string
}

// stages returns the Dockerfile's instructions split into build stages.
func stages(t *testing.T) [][]instruction {
	t.Helper()
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var all []instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		} else if strings.HasPrefix(trimmed, "#") {
			continue // a comment inside a continued instruction
		}
		if s, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		all = append(all, instruction{start, strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	var out [][]instruction
	for _, in := range all {
		if in.cmd == "FROM" || len(out) == 0 {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], in)
	}
	return out
}

// execForm decodes a JSON-array (exec form) argument list.
func execForm(t *testing.T, in instruction, s string) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Errorf("Dockerfile:%d: %s %s: want the exec form [\"…\", …] (the final image has no shell): %v", in.line, in.cmd, s, err)
	}
	return v
}

func TestDockerfile(t *testing.T) {
	st := stages(t)
	if len(st) < 2 {
		t.Fatalf("Dockerfile has %d stage(s), want a builder and a final stage", len(st))
	}
	build, final := st[0], st[len(st)-1]

	if !strings.HasPrefix(build[0].args, "golang:1.26") {
		t.Errorf("Dockerfile:%d: builder FROM %s, want golang:1.26", build[0].line, build[0].args)
	}
	var static bool
	for _, in := range build {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") && strings.Contains(in.args, "CGO_ENABLED=0") && strings.Contains(in.args, "./cmd/bridge") {
			static = true
		}
	}
	if !static {
		t.Error("builder: no `CGO_ENABLED=0 go build … ./cmd/bridge` (the final image has no libc)")
	}

	var entrypoint, cmd []string
	var exposed, healthy bool
	user := "root"
	for _, in := range final {
		switch in.cmd {
		case "EXPOSE":
			for _, p := range strings.Fields(in.args) {
				exposed = exposed || strings.TrimSuffix(p, "/tcp") == containerPort
			}
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entrypoint = execForm(t, in, in.args)
		case "CMD":
			cmd = execForm(t, in, in.args)
		case "HEALTHCHECK":
			_, c, ok := strings.Cut(in.args, "CMD ")
			if !ok {
				t.Errorf("Dockerfile:%d: HEALTHCHECK without CMD", in.line)
				continue
			}
			hc := execForm(t, in, c)
			if len(hc) < 2 || hc[0] != "/bridge" || hc[1] != "health" {
				t.Errorf("Dockerfile:%d: HEALTHCHECK runs %q, want [\"/bridge\", \"health\", …]", in.line, hc)
			} else {
				healthy = true
				checkHealthAddr(t, "Dockerfile HEALTHCHECK", hc[2:])
			}
		}
	}
	if !exposed {
		t.Errorf("final stage: no EXPOSE %s", containerPort)
	}
	if !healthy {
		t.Error("final stage: no HEALTHCHECK running `/bridge health`")
	}
	if u, _, _ := strings.Cut(user, ":"); u == "root" || u == "0" || u == "" {
		t.Errorf("final stage runs as %q, want a non-root USER", user)
	}
	if !slices.Equal(entrypoint, []string{"/bridge"}) {
		t.Errorf("ENTRYPOINT %q, want [\"/bridge\"]", entrypoint)
	}
	args := append(slices.Clone(entrypoint), cmd...)
	if got := flagValue(args[min(1, len(args)):], "addr"); got != containerBind {
		t.Errorf("ENTRYPOINT + CMD %q binds %q, want --addr %s (reachable through a published port)", args, got, containerBind)
	}
	if len(cmd) == 0 || cmd[0] != "serve" {
		t.Errorf("CMD %q: want [\"serve\", …]", cmd)
	}
}

// checkHealthAddr checks that a healthcheck's `bridge health` arguments
// dial the bridge on the container's loopback: no --addr means the default
// 127.0.0.1:8098.
func checkHealthAddr(t *testing.T, where string, args []string) {
	t.Helper()
	if a := flagValue(args, "addr"); a != "" && a != "127.0.0.1:"+containerPort && a != "localhost:"+containerPort {
		t.Errorf("%s: bridge health --addr %s, want 127.0.0.1:%s", where, a, containerPort)
	}
}

// flagValue returns the value of --name (or -name) in args: "--name v" or "--name=v".
func flagValue(args []string, name string) string {
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// TestREADMEDocumentsServeFlags keeps the README's configuration table in
// step with `bridge serve`: every flag defined in cmd/bridge/serve.go and
// the shared flags of cmd/bridge/config.go, and every BRIDGE_* variable
// they read, appears in README.md.
func TestREADMEDocumentsServeFlags(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var flags, envs []string
	fset := token.NewFileSet()
	for _, name := range []string{"../cmd/bridge/serve.go", "../cmd/bridge/config.go"} {
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			// fs.StringVar(&v, "name", …), fs.DurationVar(…), …
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok && strings.HasSuffix(sel.Sel.Name, "Var") && len(call.Args) >= 3 {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "fs" {
					if s, ok := stringLit(call.Args[1]); ok {
						flags = append(flags, s)
					}
				}
			}
			// os.Getenv("BRIDGE_…"), envOr("BRIDGE_…", …), envInt(…)
			for _, a := range call.Args {
				if s, ok := stringLit(a); ok && strings.HasPrefix(s, "BRIDGE_") {
					envs = append(envs, s)
				}
			}
			return true
		})
	}
	if len(flags) < 5 {
		t.Fatalf("found only %d flags in cmd/bridge/serve.go and config.go (%v): has the flag code moved?", len(flags), flags)
	}
	for _, f := range flags {
		if !regexp.MustCompile("`--" + regexp.QuoteMeta(f) + "[ `=]").Match(readme) {
			t.Errorf("README.md does not document the serve flag --%s", f)
		}
	}
	for _, e := range envs {
		if !strings.Contains(string(readme), "`"+e+"`") {
			t.Errorf("README.md does not document the environment variable %s", e)
		}
	}
	if !strings.Contains(string(readme), "`WEBSOCKET_URL`") {
		t.Error("README.md does not document WEBSOCKET_URL")
	}
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

func scalar(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

func keys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
