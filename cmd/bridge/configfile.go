package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// configFile is the bridge's configuration file: the host integrations a
// studio sets up once rather than on every command line. What flags and
// environment variables give is added to it.
//
//	{
//	  "listen":  {"aftereffects": "127.0.0.1:8097", "photoshop": "127.0.0.1:8099"},
//	  "skyhook": {"maya": "", "houdini": "127.0.0.1:65502"},
//	  "unreal":  ["127.0.0.1:30010"],
//	  "catalog": "/studio/dccbridge/catalog"
//	}
//
// An empty SkyHook address means the catalog's port on 127.0.0.1.
type configFile struct {
	Listen  map[string]string `json:"listen"`
	SkyHook map[string]string `json:"skyhook"`
	Unreal  []string          `json:"unreal"`
	Catalog string            `json:"catalog"`
}

// defaultConfigFile is config.json next to the default token file.
func defaultConfigFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "dccbridge", "config.json"), nil
}

// loadConfigFile reads path; a missing file is no configuration unless it
// was named explicitly (--config, BRIDGE_CONFIG).
func loadConfigFile(path string, explicit bool) (configFile, error) {
	var cf configFile
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !explicit:
		return cf, nil
	case err != nil:
		return cf, fmt.Errorf("config file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cf); err != nil {
		return cf, fmt.Errorf("config file %s: %w (it holds listen, skyhook, unreal and catalog; see README, Configuration)", path, err)
	}
	return cf, nil
}

// apply adds the file's settings to cfg, before those of flags and the
// environment, which come after them (and so win where a setting takes
// one value).
func (cf configFile) apply(cfg *serveConfig) error {
	var listen, skyhook []appListener
	for _, app := range sortedKeys(cf.Listen) {
		l, err := parseListen(app + "=" + cf.Listen[app])
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		listen = append(listen, l)
	}
	for _, app := range sortedKeys(cf.SkyHook) {
		v := app
		if cf.SkyHook[app] != "" {
			v += "=" + cf.SkyHook[app]
		}
		skyhook = append(skyhook, appListener{app: v})
	}
	cfg.listen = append(listen, cfg.listen...)
	cfg.skyhook = append(skyhook, cfg.skyhook...)
	cfg.unreal = append(slices.Clone(cf.Unreal), cfg.unreal...)
	if cfg.catalogDir == "" {
		cfg.catalogDir = cf.Catalog
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
