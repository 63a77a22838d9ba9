// Reads (never verifies) the claims of a JWT: the package only needs `sub` and `exp`.

/** The claims the package reads. */
export interface TokenClaims {
  sub?: string;
  exp?: number;
  [claim: string]: unknown;
}

/** The payload of `token`, or `null` when it is not a readable JWT. */
export function decodeJwt(token: string): TokenClaims | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
    const bin = atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const claims: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" ? (claims as TokenClaims) : null;
  } catch {
    return null;
  }
}
