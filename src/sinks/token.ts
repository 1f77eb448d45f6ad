import tls from 'node:tls';
import {
  AzureAuthorityHosts,
  ClientCertificateCredential,
  ClientSecretCredential,
  ManagedIdentityCredential,
  WorkloadIdentityCredential,
  type AccessToken,
  type TokenCredential,
} from '@azure/identity';
import type { Cloud, SinkConfig } from '../config/schema.js';
import { assertPrivateFile, readSecret } from '../util/secrets.js';

type IngestionConfig = Extract<SinkConfig, { type: 'logs-ingestion' }>;

export const MONITOR_SCOPES: Record<Cloud, string> = {
  AzureCloud: 'https://monitor.azure.com//.default',
  AzureUSGovernment: 'https://monitor.azure.us//.default',
  AzureChinaCloud: 'https://monitor.azure.cn//.default',
};

export const AUTHORITY_HOSTS: Record<Cloud, string> = {
  AzureCloud: AzureAuthorityHosts.AzurePublicCloud,
  AzureUSGovernment: AzureAuthorityHosts.AzureGovernment,
  AzureChinaCloud: AzureAuthorityHosts.AzureChina,
};

export function scopeFor(config: Pick<IngestionConfig, 'cloud' | 'scope'>): string {
  return config.scope ?? MONITOR_SCOPES[config.cloud ?? 'AzureCloud'];
}

export function authorityHostFor(config: Pick<IngestionConfig, 'cloud' | 'authorityHost'>): string {
  return config.authorityHost ?? AUTHORITY_HOSTS[config.cloud ?? 'AzureCloud'];
}

/** Builds the @azure/identity credential named by config.auth. Reads secrets now, so errors surface at start. */
export function createCredential(
  config: IngestionConfig,
  opts: { env?: NodeJS.ProcessEnv; ca?: string | Buffer; clientSecret?: string } = {},
): TokenCredential {
  const env = opts.env ?? process.env;
  const authorityHost = authorityHostFor(config);
  const common = {
    authorityHost,
    // A custom authority (private link, tests) is not in Microsoft's instance-discovery list.
    disableInstanceDiscovery: config.authorityHost !== undefined,
    // Our delivery loop owns retries; the credential should fail fast into it.
    retryOptions: { maxRetries: 1 },
    ...(opts.ca ? { tlsOptions: { ca: [...tls.rootCertificates, opts.ca.toString()] } } : {}),
  };
  const auth = config.auth;
  switch (auth.kind) {
    case 'client-secret': {
      const secret =
        opts.clientSecret ?? readSecret({ file: auth.clientSecretFile, env: 'AZURE_CLIENT_SECRET', label: 'client secret' }, env);
      return new ClientSecretCredential(auth.tenantId, auth.clientId, secret, common);
    }
    case 'certificate':
      // The PEM holds the private key: same rule as any secret file.
      assertPrivateFile(auth.certificateFile, 'client certificate');
      return new ClientCertificateCredential(auth.tenantId, auth.clientId, { certificatePath: auth.certificateFile }, common);
    case 'managed-identity':
      return auth.clientId
        ? new ManagedIdentityCredential({ clientId: auth.clientId, retryOptions: { maxRetries: 1 } })
        : new ManagedIdentityCredential({ retryOptions: { maxRetries: 1 } });
    case 'workload-identity':
      // Reads AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE (set by the AKS webhook).
      return new WorkloadIdentityCredential({
        ...common,
        tenantId: env.AZURE_TENANT_ID,
        clientId: env.AZURE_CLIENT_ID,
        tokenFilePath: env.AZURE_FEDERATED_TOKEN_FILE,
      });
  }
}

/** Refresh this long before expiry so no request goes out with a token about to lapse. */
const REFRESH_MARGIN_MS = 5 * 60_000;

/**
 * Caches one bearer token and refreshes it ahead of expiry (or at the service's refresh_in hint).
 * `invalidate()` after a 401 drops the cache and, where it helps, the credential's own cache.
 */
export class TokenCache {
  private token?: AccessToken;
  private inflight?: Promise<AccessToken>;
  private credential: TokenCredential;

  constructor(
    private readonly scope: string,
    private readonly makeCredential: () => TokenCredential,
    private readonly now: () => number = Date.now,
  ) {
    this.credential = makeCredential();
  }

  /** When to fetch again: the service's refresh hint, else 5 min (or half the lifetime) before expiry. */
  private refreshAt = 0;

  private planRefresh(t: AccessToken): void {
    const lifetime = t.expiresOnTimestamp - this.now();
    const early = t.expiresOnTimestamp - Math.min(REFRESH_MARGIN_MS, lifetime / 2);
    this.refreshAt = t.refreshAfterTimestamp !== undefined ? Math.min(t.refreshAfterTimestamp, early) : early;
  }

  async get(signal?: AbortSignal): Promise<string> {
    const cached = this.token;
    if (cached && this.now() < this.refreshAt) return cached.token;
    try {
      const t = await this.fetch(signal);
      return t.token;
    } catch (err) {
      // A failed early refresh must not stop delivery while the old token is still good.
      if (cached && this.now() < cached.expiresOnTimestamp - 30_000) return cached.token;
      throw err;
    }
  }

  private fetch(signal?: AbortSignal): Promise<AccessToken> {
    this.inflight ??= (async () => {
      try {
        const t = await this.credential.getToken(this.scope, { abortSignal: signal });
        if (!t) throw new Error('the credential returned no token');
        this.token = t;
        this.planRefresh(t);
        return t;
      } finally {
        this.inflight = undefined;
      }
    })();
    return this.inflight;
  }

  /** After a 401: forget the token and rebuild the credential so MSAL's cache is bypassed too. */
  invalidate(): void {
    this.token = undefined;
    try {
      this.credential = this.makeCredential();
    } catch {
      // Secret file unreadable right now: keep the old credential; the next token call reports it.
    }
  }
}
