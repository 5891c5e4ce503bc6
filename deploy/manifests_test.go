// Package deploy holds the deployment files (Dockerfile, Compose, Kubernetes,
// FaaS examples). Its test keeps them honest against the runner: every YAML
// file parses, and every port, env var and config the manifests give the
// runner exists in it. The probe paths are checked against the real API in
// cmd/tasker-runner/deploy_test.go (deploy may import only config).
package deploy

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"
	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"

	"github.com/tasker-runner/tasker-runner/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// docs parses every document of a YAML file into generic maps. Custom tags
// (CloudFormation's !Ref, !GetAtt) are resolved as plain values.
func docs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out []map[string]any
	for i := 0; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, i, err)
		}
		stripTags(&n)
		var m map[string]any
		if err := n.Decode(&m); err != nil {
			t.Fatalf("%s: document %d: %v", path, i, err)
		}
		if m != nil {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no YAML documents", path)
	}
	return out
}

func stripTags(n *yaml.Node) {
	if n.Tag != "" && !strings.HasPrefix(n.Tag, "!!") {
		n.Tag = ""
	}
	for _, c := range n.Content {
		stripTags(c)
	}
}

// get walks maps and lists: get(v, "spec", "template", "spec", "containers", 0).
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func yamlFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestYAMLParses(t *testing.T) {
	files := yamlFiles(t)
	for _, want := range []string{"compose.yaml", "kubernetes/deployment.yaml", "kubernetes/kustomization.yaml", "faas/knative-service.yaml", "faas/lambda/template.yaml"} {
		if !slices.Contains(files, want) {
			t.Errorf("%s is missing", want)
		}
	}
	for _, f := range files {
		for i, d := range docs(t, f) {
			if strings.HasPrefix(f, "kubernetes/") && d["kind"] != "Kustomization" && (d["apiVersion"] == nil || d["kind"] == nil || get(d, "metadata", "name") == nil) {
				t.Errorf("%s: document %d lacks apiVersion, kind or metadata.name", f, i)
			}
		}
	}
}

// TestKustomization checks that kustomization.yaml lists every manifest but
// the optional KEDA one, and that the files it lists exist.
func TestKustomization(t *testing.T) {
	k := docs(t, "kubernetes/kustomization.yaml")[0]
	var listed []string
	for _, r := range k["resources"].([]any) {
		listed = append(listed, r.(string))
		if _, err := os.Stat(filepath.Join("kubernetes", r.(string))); err != nil {
			t.Errorf("kustomization lists %s: %v", r, err)
		}
	}
	entries, err := os.ReadDir("kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		n := e.Name()
		if n == "kustomization.yaml" || !strings.HasSuffix(n, ".yaml") {
			continue
		}
		if in := slices.Contains(listed, n); in == (n == "keda-scaledobject.yaml") {
			t.Errorf("%s: listed in kustomization = %v, want %v", n, in, !in)
		}
	}
}

// k8sObjects returns the Kubernetes objects by kind/name.
func k8sObjects(t *testing.T) map[string]map[string]any {
	t.Helper()
	objs := make(map[string]map[string]any)
	files, _ := filepath.Glob("kubernetes/*.yaml")
	for _, f := range files {
		for _, d := range docs(t, f) {
			if d["kind"] == "Kustomization" {
				continue
			}
			objs[d["kind"].(string)+"/"+get(d, "metadata", "name").(string)] = d
		}
	}
	return objs
}

// configMapTOML writes the ConfigMap's worker.toml to a temp file.
func configMapTOML(t *testing.T, objs map[string]map[string]any) string {
	t.Helper()
	cm := objs["ConfigMap/tasker-runner-config"]
	toml, ok := get(cm, "data", "worker.toml").(string)
	if !ok {
		t.Fatal("ConfigMap tasker-runner-config has no data.worker.toml")
	}
	path := filepath.Join(t.TempDir(), "worker.toml")
	if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// envKey maps a TASKER_* variable back to its config key ("" if none) by
// trying every way of reading its underscores as dots.
func envKey(name string) string {
	parts := strings.Split(strings.ToLower(strings.TrimPrefix(name, config.EnvPrefix)), "_")
	for mask := 0; mask < 1<<(len(parts)-1); mask++ {
		var b strings.Builder
		b.WriteString(parts[0])
		for i, p := range parts[1:] {
			if mask&(1<<i) != 0 {
				b.WriteByte('.')
			} else {
				b.WriteByte('_')
			}
			b.WriteString(p)
		}
		if config.EnvVar(b.String()) == name {
			return b.String()
		}
	}
	return ""
}

// checkEnv asserts every variable is one the runner reads, and that the set
// loads (on top of file, if any) without error.
func checkEnv(t *testing.T, where, file string, env map[string]string) config.Config {
	t.Helper()
	for name := range env {
		switch {
		case name == config.DatabaseURLEnv, name == config.PathEnv:
		case name == "GOGC", name == "GOMEMLIMIT", name == "GOMAXPROCS":
			// Read by the Go runtime of the binary (README: Configuration).
		case strings.HasPrefix(name, config.EnvPrefix):
			if envKey(name) == "" {
				t.Errorf("%s: env %s is no config key", where, name)
			}
		default:
			t.Errorf("%s: env %s is not read by the runner", where, name)
		}
	}
	if _, ok := env[config.DatabaseURLEnv]; !ok {
		t.Errorf("%s: no %s", where, config.DatabaseURLEnv)
	}
	cfg, err := config.Load(file, envconfig.MapLookuper(env))
	if err != nil {
		t.Fatalf("%s: config.Load: %v", where, err)
	}
	if cfg.Database.URL == "" {
		t.Errorf("%s: DATABASE_URL did not set database.url", where)
	}
	return cfg
}

// containerEnv returns a container's variables. One from a secretKeyRef
// gets the value the Secret in objs holds; fromSecret lists those.
func containerEnv(t *testing.T, where string, c any, objs map[string]map[string]any) (env map[string]string, fromSecret []string) {
	t.Helper()
	env = make(map[string]string)
	envList, _ := get(c, "env").([]any)
	for _, e := range envList {
		name := get(e, "name").(string)
		if v, ok := get(e, "value").(string); ok {
			env[name] = v
			continue
		}
		ref := get(e, "valueFrom", "secretKeyRef")
		if ref == nil {
			t.Errorf("%s: env %s: want value or valueFrom.secretKeyRef", where, name)
			continue
		}
		secret := objs["Secret/"+get(ref, "name").(string)]
		v, ok := get(secret, "stringData", get(ref, "key").(string)).(string)
		if !ok {
			t.Errorf("%s: env %s: Secret %v has no stringData key %v", where, name, get(ref, "name"), get(ref, "key"))
		}
		env[name] = v
		fromSecret = append(fromSecret, name)
	}
	return env, fromSecret
}

// dockerfileEnv returns the variables the image sets (ENV lines).
func dockerfileEnv(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	env := make(map[string]string)
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	for line := range strings.SplitSeq(text, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "ENV ")
		if !ok {
			continue
		}
		for _, kv := range strings.Fields(rest) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("Dockerfile: ENV %q: want KEY=VALUE pairs", rest)
			}
			env[k] = strings.Trim(v, `"`)
		}
	}
	return env
}

// merge returns the variables of base overridden by over, as a container
// runtime applies its env over the image's.
func merge(base, over map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

const apiKeysEnv = "TASKER_WORKER_WEB_AUTH_API_KEYS"

// checkSecured asserts a container's configuration listens on every
// interface (as a container must) with auth on and API keys set, and does
// not opt out of auth.
func checkSecured(t *testing.T, where string, cfg config.Config, env map[string]string, files ...string) {
	t.Helper()
	w := cfg.Worker
	if config.IsLoopback(w.Web.Host) || config.IsLoopback(w.GRPC.Host) {
		t.Errorf("%s: hosts %q and %q: a container must listen beyond loopback", where, w.Web.Host, w.GRPC.Host)
	}
	if !w.Web.Auth.Enabled {
		t.Errorf("%s: worker.web.auth.enabled is false", where)
	}
	if len(w.Web.Auth.APIKeys) == 0 {
		t.Errorf("%s: no worker.web.auth.api_keys", where)
	}
	if w.Web.Auth.AllowUnauthenticated {
		t.Errorf("%s: worker.web.auth.allow_unauthenticated is true", where)
	}
	if _, ok := env[config.EnvVar("worker.web.auth.allow_unauthenticated")]; ok {
		t.Errorf("%s: sets %s", where, config.EnvVar("worker.web.auth.allow_unauthenticated"))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "allow_unauthenticated") {
			t.Errorf("%s: its worker.toml mentions allow_unauthenticated", where)
		}
	}
}

func TestKubernetesRunner(t *testing.T) {
	objs := k8sObjects(t)
	def := config.Default().Worker
	tomlPath := configMapTOML(t, objs)
	dep := objs["Deployment/tasker-runner"]
	if dep == nil {
		t.Fatal("no Deployment tasker-runner")
	}
	if r, _ := get(dep, "spec", "replicas").(int); r != 2 {
		t.Errorf("replicas = %v, want 2", get(dep, "spec", "replicas"))
	}
	pod := get(dep, "spec", "template", "spec")
	c := get(pod, "containers", 0)

	checkRunnerArgs(t, c)
	cfg := checkRunnerConfig(t, c, objs, tomlPath)
	ports, want := checkRunnerPorts(t, c, cfg, def)
	checkRunnerPod(t, pod, c, cfg, def)
	svc := objs["Service/tasker-runner"]
	checkRunnerService(t, svc, ports, want)
	checkRunnerSelectors(t, dep, svc, objs)
}

// checkRunnerArgs checks the runner container's args: serve with the
// ConfigMap's file at its mount path.
func checkRunnerArgs(t *testing.T, c any) {
	t.Helper()
	args := get(c, "args").([]any)
	if len(args) < 3 || args[0] != "serve" || args[1] != "--config" {
		t.Fatalf("args = %v, want serve --config PATH", args)
	}
	cfgPath := args[2].(string)
	mounted := false
	for _, m := range get(c, "volumeMounts").([]any) {
		if get(m, "mountPath") == filepath.Dir(cfgPath) {
			mounted = true
		}
	}
	if !mounted || filepath.Base(cfgPath) != "worker.toml" {
		t.Errorf("--config %s is not the mounted ConfigMap's worker.toml", cfgPath)
	}
}

// checkRunnerConfig loads the runner container's configuration and checks
// it: env (the image's, then the container's) and the ConfigMap's
// worker.toml load together, secured. The manifests secure the runner on
// their own too, not only through the image's env.
func checkRunnerConfig(t *testing.T, c any, objs map[string]map[string]any, tomlPath string) config.Config {
	t.Helper()
	env, fromSecret := containerEnv(t, "deployment", c, objs)
	checkSecured(t, "deployment without the image's env", checkEnv(t, "deployment", tomlPath, env), env, tomlPath)
	env = merge(dockerfileEnv(t), env)
	cfg := checkEnv(t, "deployment", tomlPath, env)
	checkSecured(t, "deployment", cfg, env, tomlPath)
	if !slices.Contains(fromSecret, apiKeysEnv) {
		t.Errorf("deployment: %s does not come from a secretKeyRef", apiKeysEnv)
	}
	if def := config.Default(); cfg.Worker.Web.Auth.PublicHealth != def.Worker.Web.Auth.PublicHealth || !cfg.Worker.Web.Auth.PublicHealth {
		t.Error("worker.web.auth.public_health is off: the probes carry no credentials")
	}
	if !cfg.Worker.Web.Enabled || !cfg.Worker.GRPC.Enabled {
		t.Error("worker.toml disables the REST or gRPC API the Service exposes")
	}
	return cfg
}

// checkRunnerPorts checks the container's ports (the defaults, and the
// values in worker.toml) and returns them and the wanted ones by name.
func checkRunnerPorts(t *testing.T, c any, cfg config.Config, def config.Worker) (ports, want map[string]int) {
	t.Helper()
	ports = map[string]int{}
	for _, p := range get(c, "ports").([]any) {
		ports[get(p, "name").(string)] = get(p, "containerPort").(int)
	}
	want = map[string]int{"http": def.Web.Port, "grpc": def.GRPC.Port}
	for name, port := range want {
		if ports[name] != port {
			t.Errorf("container port %s = %d, want %d", name, ports[name], port)
		}
	}
	if cfg.Worker.Web.Port != def.Web.Port || cfg.Worker.GRPC.Port != def.GRPC.Port {
		t.Errorf("worker.toml ports %d/%d differ from the manifests' %d/%d", cfg.Worker.Web.Port, cfg.Worker.GRPC.Port, def.Web.Port, def.GRPC.Port)
	}
	return ports, want
}

// checkRunnerPod checks the pod's probes (on the REST port at the health
// endpoints), graceful shutdown and security.
func checkRunnerPod(t *testing.T, pod, c any, cfg config.Config, def config.Worker) {
	t.Helper()
	for probe, path := range map[string]string{"livenessProbe": "/health/live", "readinessProbe": "/health/ready"} {
		if got := get(c, probe, "httpGet", "path"); got != path {
			t.Errorf("%s path = %v, want %s", probe, got, path)
		}
		if got := get(c, probe, "httpGet", "port"); got != def.Web.Port && got != "http" {
			t.Errorf("%s port = %v, want %d", probe, got, def.Web.Port)
		}
	}

	// Graceful shutdown fits in the grace period.
	grace, _ := get(pod, "terminationGracePeriodSeconds").(int)
	if shutdown := cfg.Worker.ShutdownTimeoutSeconds; float64(grace) <= float64(shutdown) {
		t.Errorf("terminationGracePeriodSeconds %d <= worker.shutdown_timeout_seconds %v", grace, shutdown)
	}

	// Non-root, read-only, no capabilities.
	if get(pod, "securityContext", "runAsNonRoot") != true || get(c, "securityContext", "runAsNonRoot") != true {
		t.Error("runAsNonRoot is not set")
	}
	if get(c, "securityContext", "readOnlyRootFilesystem") != true {
		t.Error("readOnlyRootFilesystem is not set")
	}
	if drop, _ := get(c, "securityContext", "capabilities", "drop").([]any); !slices.Contains(drop, any("ALL")) {
		t.Error("capabilities do not drop ALL")
	}
	if get(c, "resources", "requests") == nil {
		t.Error("no resource requests")
	}
}

// checkRunnerService checks that the runner's Service exposes both ports,
// targeting the container's.
func checkRunnerService(t *testing.T, svc any, ports, want map[string]int) {
	t.Helper()
	svcPorts := map[string]int{}
	for _, p := range get(svc, "spec", "ports").([]any) {
		tp := get(p, "targetPort")
		if n, ok := tp.(string); ok {
			tp = ports[n]
		}
		if tp != get(p, "port") {
			t.Errorf("Service port %v targets %v", get(p, "port"), get(p, "targetPort"))
		}
		svcPorts[get(p, "name").(string)] = get(p, "port").(int)
	}
	for name, port := range want {
		if svcPorts[name] != port {
			t.Errorf("Service port %s = %d, want %d", name, svcPorts[name], port)
		}
	}
}

// checkRunnerSelectors checks that the selectors of Service and PDB match
// the pod, and the PDB and the HPA of the runner.
func checkRunnerSelectors(t *testing.T, dep, svc any, objs map[string]map[string]any) {
	t.Helper()
	labels := get(dep, "spec", "template", "metadata", "labels").(map[string]any)
	for what, sel := range map[string]any{
		"Service": get(svc, "spec", "selector"),
		"PDB":     get(objs["PodDisruptionBudget/tasker-runner"], "spec", "selector", "matchLabels"),
	} {
		for k, v := range sel.(map[string]any) {
			if labels[k] != v {
				t.Errorf("%s selector %s=%v does not match the pod", what, k, v)
			}
		}
	}
	if get(objs["PodDisruptionBudget/tasker-runner"], "spec", "minAvailable") != 1 {
		t.Error("PDB minAvailable != 1")
	}
	hpa := objs["HorizontalPodAutoscaler/tasker-runner"]
	if get(hpa, "apiVersion") != "autoscaling/v2" || get(hpa, "spec", "scaleTargetRef", "name") != "tasker-runner" ||
		get(hpa, "spec", "metrics", 0, "resource", "name") != "cpu" {
		t.Error("HPA is not an autoscaling/v2 CPU autoscaler of the Deployment")
	}
}

func TestKubernetesMigrateJob(t *testing.T) {
	objs := k8sObjects(t)
	job := objs["Job/tasker-runner-migrate"]
	c := get(job, "spec", "template", "spec", "containers", 0)
	args := get(c, "args").([]any)
	if args[0] != "migrate" || args[len(args)-1] != "up" {
		t.Errorf("migrate Job args = %v, want migrate ... up", args)
	}
	file := ""
	if i := slices.Index(args, any("--config")); i >= 0 {
		file = configMapTOML(t, objs)
	}
	env, _ := containerEnv(t, "migrate Job", c, objs)
	checkEnv(t, "migrate Job", file, merge(dockerfileEnv(t), env))
	if get(job, "spec", "template", "spec", "containers", 0, "image") != get(objs["Deployment/tasker-runner"], "spec", "template", "spec", "containers", 0, "image") {
		t.Error("migrate Job and Deployment use different images")
	}
}

func TestKubernetesSecretAndKEDA(t *testing.T) {
	objs := k8sObjects(t)
	secret := objs["Secret/tasker-runner"]
	if get(secret, "stringData", config.DatabaseURLEnv) == nil {
		t.Errorf("Secret tasker-runner has no %s", config.DatabaseURLEnv)
	}
	// The API keys decode as the runner decodes them, and hold only hashes.
	keys, _ := get(secret, "stringData", apiKeysEnv).(string)
	cfg, err := config.Load("", envconfig.MapLookuper(map[string]string{apiKeysEnv: keys}))
	if err != nil {
		t.Fatalf("Secret %s: %v", apiKeysEnv, err)
	}
	if len(cfg.Worker.Web.Auth.APIKeys) == 0 {
		t.Errorf("Secret %s holds no key", apiKeysEnv)
	}
	for _, k := range cfg.Worker.Web.Auth.APIKeys {
		if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(k.Hash) {
			t.Errorf("Secret %s: hash %q is not sha256:<64 hex>", apiKeysEnv, k.Hash)
		}
	}
	so := objs["ScaledObject/tasker-runner"]
	trig := get(so, "spec", "triggers", 0)
	if get(trig, "type") != "postgresql" {
		t.Fatalf("KEDA trigger = %v, want postgresql", get(trig, "type"))
	}
	q, _ := get(trig, "metadata", "query").(string)
	if !strings.Contains(q, "tasker.steps") || !strings.Contains(q, "'enqueued'") || !strings.Contains(q, "run_at <= now()") {
		t.Errorf("KEDA query %q", q)
	}
	if v, err := strconv.Atoi(get(trig, "metadata", "targetQueryValue").(string)); err != nil || v <= 0 {
		t.Errorf("targetQueryValue = %v", get(trig, "metadata", "targetQueryValue"))
	}
	auth := objs["TriggerAuthentication/"+get(trig, "authenticationRef", "name").(string)]
	ref := get(auth, "spec", "secretTargetRef", 0)
	if get(ref, "parameter") != "connection" || get(ref, "name") != "tasker-runner" || get(ref, "key") != config.DatabaseURLEnv {
		t.Errorf("TriggerAuthentication secretTargetRef = %v", ref)
	}
}

// TestDockerfile: the image listens on every interface, as a container
// must, with auth on and no opt-out; without keys it refuses to start.
func TestDockerfile(t *testing.T) {
	env := dockerfileEnv(t)
	for k, want := range map[string]string{
		"TASKER_WORKER_WEB_HOST":         "0.0.0.0",
		"TASKER_WORKER_GRPC_HOST":        "0.0.0.0",
		"TASKER_WORKER_WEB_AUTH_ENABLED": "true",
	} {
		if env[k] != want {
			t.Errorf("Dockerfile: ENV %s=%q, want %q", k, env[k], want)
		}
	}
	if _, err := config.Load("", envconfig.MapLookuper(env)); err == nil || !strings.Contains(err.Error(), "worker.web.auth.enabled") {
		t.Errorf("the image's env without API keys loads (err %v); want it refused naming worker.web.auth.enabled", err)
	}
	env[apiKeysEnv] = `[{"name":"k","hash":"` + composeSet["TASKER_API_KEY_HASH"] + `","scope":"read"}]`
	cfg := checkEnv(t, "Dockerfile", "", merge(env, map[string]string{config.DatabaseURLEnv: "postgres://db/x"}))
	checkSecured(t, "Dockerfile", cfg, env)
}

// composeVar matches ${VAR}, ${VAR:-default} and ${VAR:?error}.
var composeVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}`)

// composeSet are the variables a user sets for Compose (deploy/README.md).
var composeSet = map[string]string{"TASKER_API_KEY_HASH": "sha256:" + strings.Repeat("ab", 32)}

// interpolate replaces variables as Compose does with only composeSet set;
// a required variable (${VAR:?...}) must be in composeSet.
func interpolate(t *testing.T, s string) string {
	t.Helper()
	return composeVar.ReplaceAllStringFunc(s, func(m string) string {
		p := composeVar.FindStringSubmatch(m)
		if v, ok := composeSet[p[1]]; ok {
			return v
		}
		if strings.HasSuffix(p[2], "?") {
			t.Errorf("compose: required variable %s is not in composeSet", p[1])
		}
		if strings.HasSuffix(p[2], "-") {
			return p[3]
		}
		return ""
	})
}

func TestCompose(t *testing.T) {
	d := docs(t, "compose.yaml")[0]
	services := d["services"].(map[string]any)
	def := config.Default().Worker

	pg := services["postgres"]
	if img, _ := get(pg, "image").(string); !strings.HasPrefix(img, "postgres:15") || get(pg, "healthcheck", "test") == nil {
		t.Errorf("postgres service: image %v, want postgres:15 with a healthcheck", img)
	}
	for _, name := range []string{"migrate", "runner"} {
		s := services[name]
		env := map[string]string{}
		raw := get(s, "environment").(map[string]any)
		for k, v := range raw {
			env[k] = interpolate(t, v.(string))
		}
		cfg := checkEnv(t, "compose "+name, "", merge(dockerfileEnv(t), env))
		cmd := get(s, "command").([]any)
		switch name {
		case "migrate":
			if !slices.Equal(cmd, []any{"migrate", "up"}) {
				t.Errorf("migrate command = %v", cmd)
			}
		case "runner":
			if cmd[0] != "serve" {
				t.Errorf("runner command = %v, want serve", cmd)
			}
			if get(s, "depends_on", "migrate", "condition") != "service_completed_successfully" {
				t.Error("runner does not wait for migrate")
			}
			for _, p := range get(s, "ports").([]any) {
				parts := strings.Split(p.(string), ":")
				cp, _ := strconv.Atoi(parts[len(parts)-1])
				if cp != def.Web.Port && cp != def.GRPC.Port {
					t.Errorf("runner publishes container port %d the runner does not listen on", cp)
				}
			}
			checkHandlers(t, services, cfg)
			checkSecured(t, "compose runner", cfg, env)
			if keys, _ := raw[apiKeysEnv].(string); !strings.Contains(keys, "${TASKER_API_KEY_HASH") {
				t.Errorf("compose runner: %s = %q, want the hash from ${TASKER_API_KEY_HASH}", apiKeysEnv, keys)
			}
			// The runner itself sets what it relies on, not only the image.
			for _, k := range []string{"TASKER_WORKER_WEB_HOST", "TASKER_WORKER_GRPC_HOST", "TASKER_WORKER_WEB_AUTH_ENABLED"} {
				if _, ok := env[k]; !ok {
					t.Errorf("compose runner does not set %s", k)
				}
			}
		}
	}
}

// checkHandlers asserts TASKER_WORKER_HANDLERS sends each step to the
// handler service of its language, on the port that service listens on.
func checkHandlers(t *testing.T, services map[string]any, cfg config.Config) {
	want := map[string]string{
		"order_fulfillment.validate_order": "handler-python",
		"order_fulfillment.charge":         "handler-go",
		"order_fulfillment.reserve_stock":  "handler-ruby",
		"order_fulfillment.ship":           "handler-typescript",
		"approval.route":                   "handler-python",
		"approval.auto_approve":            "handler-ruby",
		"approval.manager_approval":        "handler-ruby",
		"approval.finance_review":          "handler-go",
		"approval.finalize":                "handler-typescript",
		"etl.analyze":                      "handler-go",
		"etl.transform":                    "handler-python",
		"etl.aggregate":                    "handler-ruby",
	}
	if len(cfg.Worker.Handlers) != len(want) {
		t.Fatalf("runner registers %d handlers, want %d", len(cfg.Worker.Handlers), len(want))
	}
	for _, h := range cfg.Worker.Handlers {
		svc, ok := want[h.Pattern]
		if !ok {
			t.Errorf("unexpected handler pattern %q", h.Pattern)
			continue
		}
		s := services[svc]
		if s == nil {
			t.Errorf("%s: no service %s", h.Pattern, svc)
			continue
		}
		if prof, _ := get(s, "profiles").([]any); !slices.Contains(prof, any("server")) {
			t.Errorf("service %s is not in the server profile", svc)
		}
		port, _ := get(s, "environment", "PORT").(string)
		if wantURL := "http://" + svc + ":" + port + "/"; h.URL != wantURL {
			t.Errorf("%s: url %s, want %s (the service's PORT)", h.Pattern, h.URL, wantURL)
		}
	}
}
