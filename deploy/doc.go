// Package deploy holds no code: its tests check the repository's container
// files (../Dockerfile and ../docker-compose.yml) and the README's
// configuration table against what the bridge actually does — the port it
// exposes, the address it binds in a container, its healthcheck, the token
// a non-loopback bind requires, the serve flags and their environment
// variables. No Docker engine is needed; these are file checks.
package deploy
