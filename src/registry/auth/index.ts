// Access control for the registry: what a request needs (distribution's
// access records, `repository:<name>:<actions>`), and two controllers in
// distribution's shape — htpasswd (Basic, bcrypt) and token (Bearer JWTs
// signed by a token server whose chain ends in `rootcertbundle`).
export * from './access.js';
export { HtpasswdController } from './htpasswd.js';
export { TokenController } from './token.js';
