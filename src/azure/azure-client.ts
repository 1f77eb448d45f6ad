import type { TokenCredential } from '@azure/identity';
import { CliError } from '../errors.js';
import { HttpTransport, describeNetworkError } from '../sinks/http.js';
import type { AzureAnswer, AzureCall } from './setup-logs-ingestion.js';
import { createReadbackCredential } from './readback.js';

export { ARM_URLS } from './arm-urls.js';

/** The outside world of `install --workspace`; tests pass one backed by the mocks. */
export interface AzureClient {
  request(call: AzureCall): Promise<AzureAnswer>;
  /** Object id of the identity the forwarder will send as. */
  forwarderPrincipalId(): Promise<string>;
}

/** The identity the forwarder will send as: the one granted the role and the one the role probe signs in as. */
export type ForwarderIdentity =
  { kind: 'client-secret'; tenantId: string; clientId: string; secret: string } | { kind: 'managed-identity'; clientId?: string };

export interface AzureClientOptions {
  env: NodeJS.ProcessEnv;
  scope: string;
  forwarder: ForwarderIdentity;
  /** Device code sign-in is offered only on a terminal. */
  interactive?: boolean;
  /** Where the device code prompt goes (stderr). */
  prompt?: (text: string) => void;
}

/**
 * Signs the operator in as readback does (DefaultAzureCredential: environment, workload identity, managed identity,
 * Azure CLI; then device code on a terminal) for the control-plane calls; the forwarder's own identity (the service
 * principal given, else the machine's managed identity) gives the principal to grant. Tokens are used, never printed.
 */
export async function createAzureClient(opts: AzureClientOptions): Promise<AzureClient & { signIn: TokenCredential }> {
  const identity = await import('@azure/identity');
  const env = opts.env;
  // A custom authority (AZURE_AUTHORITY_HOST: private clouds, tests) is not in Microsoft's instance-discovery list.
  const common = {
    disableInstanceDiscovery: Boolean(env.AZURE_AUTHORITY_HOST),
    ...(env.AZURE_AUTHORITY_HOST ? { authorityHost: env.AZURE_AUTHORITY_HOST } : {}),
  };
  const signIn = await createReadbackCredential({ env, interactive: opts.interactive, prompt: opts.prompt });
  const f = opts.forwarder;
  const forwarder: TokenCredential =
    f.kind === 'client-secret'
      ? new identity.ClientSecretCredential(f.tenantId, f.clientId, f.secret, common)
      : f.clientId
        ? new identity.ManagedIdentityCredential({ clientId: f.clientId })
        : new identity.ManagedIdentityCredential();
  const transport = new HttpTransport({ env, timeoutMs: 60_000 });
  return {
    signIn,
    async request(call) {
      let token: string;
      try {
        const t = await (call.asForwarder ? forwarder : signIn).getToken(call.scope);
        if (!t) throw new Error('no token');
        token = t.token;
      } catch (err) {
        throw new CliError(`cannot sign in to Azure: ${firstLine((err as Error).message)}`, {
          exitCode: 1,
          suggestion: 'run `az login`, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or use a managed identity',
        });
      }
      const body = call.body === undefined ? undefined : Buffer.from(JSON.stringify(call.body));
      try {
        const res = await transport.request(new URL(call.url), {
          method: call.method,
          headers: {
            authorization: `Bearer ${token}`,
            ...(body ? { 'content-type': 'application/json', 'content-length': String(body.length) } : {}),
          },
          body,
        });
        let json: unknown = null;
        try {
          json = res.body ? JSON.parse(res.body) : null;
        } catch {
          json = { error: { code: `HTTP${res.status}`, message: res.body.slice(0, 200) } };
        }
        return { status: res.status, json };
      } catch (err) {
        throw new CliError(`cannot reach ${new URL(call.url).host}: ${describeNetworkError(err)}`, { exitCode: 1 });
      }
    },
    async forwarderPrincipalId() {
      try {
        const t = await forwarder.getToken(opts.scope);
        const oid = t ? tokenObjectId(t.token) : undefined;
        if (oid) return oid;
      } catch {
        // fall through to the one-line error
      }
      throw new CliError("cannot tell the forwarder identity's object id", {
        exitCode: 2,
        suggestion: "pass --principal-id (the managed identity's or the app's service principal object id)",
      });
    },
  };
}

/** The `oid` claim of a JWT access token (read, not verified: it names whom to grant, nothing is trusted on it). */
export function tokenObjectId(token: string): string | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { oid?: unknown };
    return typeof payload.oid === 'string' ? payload.oid : undefined;
  } catch {
    return undefined;
  }
}

function firstLine(s: string): string {
  return s.split('\n')[0].slice(0, 300);
}
