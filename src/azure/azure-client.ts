import type { TokenCredential } from '@azure/identity';
import type { Cloud } from '../config/schema.js';
import { CliError } from '../errors.js';
import { HttpTransport, describeNetworkError } from '../sinks/http.js';
import type { AzureAnswer, AzureCall } from './setup-logs-ingestion.js';

export const ARM_URLS: Record<Cloud, string> = {
  AzureCloud: 'https://management.azure.com',
  AzureUSGovernment: 'https://management.usgovcloudapi.net',
  AzureChinaCloud: 'https://management.chinacloudapi.cn',
};

/** The outside world of `install --workspace`; tests pass one backed by the mocks. */
export interface AzureClient {
  request(call: AzureCall): Promise<AzureAnswer>;
  /** Object id of the identity the forwarder will send as. */
  forwarderPrincipalId(): Promise<string>;
}

/**
 * Signs in with DefaultAzureCredential (environment, workload identity, managed identity, Azure CLI, …) for the
 * control-plane calls; the forwarder's own identity (client secret from the environment, else the machine's
 * managed identity) gives the principal to grant. Tokens are used, never printed.
 */
export async function createAzureClient(opts: {
  env: NodeJS.ProcessEnv;
  scope: string;
  managedIdentityClientId?: string;
}): Promise<AzureClient> {
  const identity = await import('@azure/identity');
  const env = opts.env;
  // A custom authority (AZURE_AUTHORITY_HOST: private clouds, tests) is not in Microsoft's instance-discovery list.
  const common = {
    disableInstanceDiscovery: Boolean(env.AZURE_AUTHORITY_HOST),
    ...(env.AZURE_AUTHORITY_HOST ? { authorityHost: env.AZURE_AUTHORITY_HOST } : {}),
  };
  const signIn: TokenCredential = new identity.DefaultAzureCredential(common);
  const forwarder: TokenCredential =
    env.AZURE_CLIENT_SECRET && env.AZURE_CLIENT_ID && env.AZURE_TENANT_ID
      ? new identity.ClientSecretCredential(env.AZURE_TENANT_ID, env.AZURE_CLIENT_ID, env.AZURE_CLIENT_SECRET, common)
      : opts.managedIdentityClientId
        ? new identity.ManagedIdentityCredential({ clientId: opts.managedIdentityClientId })
        : new identity.ManagedIdentityCredential();
  const transport = new HttpTransport({ env, timeoutMs: 60_000 });
  return {
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
