package hostadapters

import (
	"cmp"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/dccbridge/dccbridge/session"
)

// Dialects a host may speak.
const (
	DialectJSONRPC = "jsonrpc" // the bridge's own: JSON-RPC 2.0 with bridge.hello
	DialectWSRPC   = "wsrpc"   // wsrpc-aiohttp's (AYON's CEP panels)
	DialectSkyHook = "skyhook" // EmbarkStudios' SkyHook HTTP server inside the DCC
	DialectUnreal  = "unreal-remote"
)

// App is what the catalog knows of one app.
type App struct {
	// Name is the app's namespace: lower-case, what calls are routed by.
	Name string `json:"app"`
	// Label is its name for people ("After Effects").
	Label string `json:"label"`
	// Aliases are other names it goes by (a panel's route prefix, Adobe's
	// four-letter code); matched without regard to case.
	Aliases []string `json:"aliases,omitempty"`
	// Kind is "host" for an application the pipeline drives.
	Kind string `json:"kind"`
	// Ports are the ports its integrations use by default.
	Ports []int `json:"ports,omitempty"`
	// Dialect is the wire its integration speaks (Dialect* constants).
	Dialect string `json:"dialect"`
	// WSRPC describes a wsrpc panel, when Dialect is wsrpc.
	WSRPC *WSRPCPanel `json:"wsrpc,omitempty"`
	// TimeoutMS is the default timeout of its methods; 0 leaves the
	// bridge's.
	TimeoutMS int `json:"timeout_ms,omitempty"`
	// Methods are the methods its host offers.
	Methods []Method `json:"methods,omitempty"`
}

// WSRPCPanel describes an app's wsrpc panel.
type WSRPCPanel struct {
	// Prefix starts every route name in both directions ("AfterEffects").
	Prefix string `json:"prefix"`
	// StartRoutes are the routes (without the prefix) the panel calls when
	// it starts: a connection whose first call is one of them is the
	// panel; another first call makes it a client, like AYON's second
	// launch calling set_context.
	StartRoutes []string `json:"start_routes"`
	// Probe is a panel route (without the prefix) that reads and changes
	// nothing, called to tell which app a silent connection is.
	Probe string `json:"probe"`
	// ServerRoutes are the routes the panel calls on the pipeline side
	// (its buttons), offered by tools.
	ServerRoutes []string `json:"server_routes,omitempty"`
}

// Method is one method of an app's host.
type Method struct {
	Name string `json:"name"`
	// Params names its keyword parameters.
	Params []string `json:"params,omitempty"`
	// Idempotent: it only reads, so running it twice does no harm, and a
	// call to it is re-sent after its host drops and comes back.
	Idempotent bool `json:"idempotent,omitempty"`
	// TimeoutMS overrides the app's default timeout (renders run long).
	TimeoutMS int    `json:"timeout_ms,omitempty"`
	Doc       string `json:"doc,omitempty"`
}

// Catalog is every app the bridge knows. It is read-only once loaded and
// safe for concurrent use. It implements session.Catalog.
type Catalog struct {
	apps    map[string]*App // by name
	aliases map[string]string
}

var _ session.Catalog = (*Catalog)(nil)

//go:embed catalog/*.json
var embedded embed.FS

// Load returns the embedded catalog, with the *.json files of dir (if not
// empty) added to it: a file for a new app adds it; a file for a known app
// overrides the fields it sets, and its methods replace or add to the
// known ones by name.
func Load(dir string) (*Catalog, error) {
	c := &Catalog{apps: map[string]*App{}, aliases: map[string]string{}}
	if err := c.addFiles(embedded, "catalog"); err != nil {
		return nil, fmt.Errorf("the built-in catalog: %w", err)
	}
	if dir != "" {
		if err := c.addFiles(os.DirFS(dir), "."); err != nil {
			return nil, fmt.Errorf("catalog %s: %w", dir, err)
		}
	}
	return c, nil
}

func (c *Catalog) addFiles(fsys fs.FS, dir string) error {
	names, err := fs.Glob(fsys, path.Join(dir, "*.json"))
	if err != nil {
		return err
	}
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		var a App
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			return fmt.Errorf("%s: %w", path.Base(name), err)
		}
		if err := c.add(&a); err != nil {
			return fmt.Errorf("%s: %w", path.Base(name), err)
		}
	}
	return nil
}

// add adds a, or merges it into the app of the same name.
func (c *Catalog) add(a *App) error {
	a.Name = strings.ToLower(a.Name)
	switch {
	case a.Name == "" || strings.ContainsAny(a.Name, ". $") || a.Name == "bridge":
		return fmt.Errorf(`"app" %q must be a name without '.', '$' or spaces`, a.Name)
	case a.Dialect != "" && !slices.Contains([]string{DialectJSONRPC, DialectWSRPC, DialectSkyHook, DialectUnreal}, a.Dialect):
		return fmt.Errorf(`"dialect" %q is not one of jsonrpc, wsrpc, skyhook, unreal-remote`, a.Dialect)
	case a.Dialect == DialectWSRPC && (a.WSRPC == nil || a.WSRPC.Prefix == ""):
		return errors.New(`a wsrpc app needs "wsrpc": {"prefix": …}`)
	}
	for _, m := range a.Methods {
		if m.Name == "" || strings.HasPrefix(m.Name, "$") {
			return fmt.Errorf("app %s: a method without a name, or reserved (%q)", a.Name, m.Name)
		}
	}
	if old, ok := c.apps[a.Name]; ok {
		a = merge(old, a)
	}
	c.apps[a.Name] = a
	for _, alias := range append([]string{a.Name}, a.Aliases...) {
		key := strings.ToLower(alias)
		if other, ok := c.aliases[key]; ok && other != a.Name {
			return fmt.Errorf("alias %q of %s is already %s's", alias, a.Name, other)
		}
		c.aliases[key] = a.Name
	}
	if a.WSRPC != nil {
		c.aliases[strings.ToLower(a.WSRPC.Prefix)] = a.Name
	}
	return nil
}

// merge returns old with what add sets.
func merge(old, add *App) *App {
	m := *old
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&m.Label, add.Label)
	set(&m.Kind, add.Kind)
	set(&m.Dialect, add.Dialect)
	m.Aliases = append(slices.Clone(old.Aliases), add.Aliases...)
	if add.Ports != nil {
		m.Ports = add.Ports
	}
	if add.WSRPC != nil {
		m.WSRPC = add.WSRPC
	}
	if add.TimeoutMS != 0 {
		m.TimeoutMS = add.TimeoutMS
	}
	m.Methods = slices.Clone(old.Methods)
	for _, am := range add.Methods {
		if i := slices.IndexFunc(m.Methods, func(x Method) bool { return x.Name == am.Name }); i >= 0 {
			m.Methods[i] = am
		} else {
			m.Methods = append(m.Methods, am)
		}
	}
	return &m
}

// App returns the app called name or known by it as an alias (any case).
func (c *Catalog) App(name string) (*App, bool) {
	a, ok := c.apps[c.aliases[strings.ToLower(name)]]
	return a, ok
}

// Apps returns every app, by name.
func (c *Catalog) Apps() []*App {
	apps := make([]*App, 0, len(c.apps))
	for _, a := range c.apps {
		apps = append(apps, a)
	}
	slices.SortFunc(apps, func(a, b *App) int { return strings.Compare(a.Name, b.Name) })
	return apps
}

// Method implements session.Catalog: name is the method as called,
// without the app ("get_items" of aftereffects.get_items).
func (c *Catalog) Method(app, name string) (session.MethodInfo, bool) {
	a, ok := c.apps[app]
	if !ok {
		return session.MethodInfo{}, false
	}
	m, ok := a.method(name)
	if !ok {
		return session.MethodInfo{}, false
	}
	return session.MethodInfo{Idempotent: m.Idempotent, Timeout: ms(cmp.Or(m.TimeoutMS, a.TimeoutMS))}, true
}

// AppLabel implements session.Catalog.
func (c *Catalog) AppLabel(app string) string {
	if a, ok := c.apps[app]; ok {
		return a.Label
	}
	return ""
}

// method returns the method called name (exactly, else without regard to
// case).
func (a *App) method(name string) (Method, bool) {
	for _, m := range a.Methods {
		if m.Name == name {
			return m, true
		}
	}
	for _, m := range a.Methods {
		if strings.EqualFold(m.Name, name) {
			return m, true
		}
	}
	return Method{}, false
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }
