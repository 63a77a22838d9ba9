// sio-gateway-client: a client for sio-gateway on top of socket.io-client.
export { Gateway, GatewayError, UnauthorizedError } from "./gateway.js";
export type { ClientErrorCode, GatewayEvents, GatewayOptions, GatewaySocket } from "./gateway.js";
export { memoryStore, localStorageStore } from "./stores.js";
export type { CursorStore, WebStorage } from "./stores.js";
export { decodeJwt } from "./jwt.js";
export type { TokenClaims } from "./jwt.js";
export type { EventMap } from "./emitter.js";
export type * from "./types.js";
