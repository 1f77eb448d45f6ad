import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { StatefulSet, type IStatefulSet } from 'kubernetes-models/apps/v1';
import { ConfigMap, Secret, Service, type IConfigMap, type ISecret, type IService } from 'kubernetes-models/v1';
import { forwarderConfigSchema } from '../../src/config/schema.js';
import { parseHostPort, parseListenUrl } from '../../src/config/listen.js';

const dir = path.resolve(import.meta.dirname, '../../deploy/kubernetes');
const MODELS: Record<string, { new (data: never): { validate(): void } }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/StatefulSet': StatefulSet,
};

type Manifest = { apiVersion: string; kind: string; metadata?: { name?: string } };
type Kinds = { StatefulSet: IStatefulSet; Service: IService; ConfigMap: IConfigMap; Secret: ISecret };
const docs: Array<{ file: string; obj: Manifest }> = readdirSync(dir)
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((file) =>
    parseAllDocuments(readFileSync(path.join(dir, file), 'utf8')).map((d) => {
      if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
      return { file, obj: d.toJS() as Manifest };
    }),
  );
const find = <K extends keyof Kinds>(kind: K, name?: string): Kinds[K][] =>
  docs.map((d) => d.obj).filter((o) => o.kind === kind && (!name || o.metadata?.name === name)) as unknown as Kinds[K][];

describe('deploy/kubernetes', () => {
  it.each(docs.map((d) => [`${d.file}: ${d.obj.kind} ${d.obj.metadata?.name}`, d.obj] as const))(
    '%s validates against the Kubernetes API schema',
    (_name, obj) => {
      const Model = MODELS[`${obj.apiVersion}/${obj.kind}`];
      expect(Model, `no model for ${obj.apiVersion}/${obj.kind}`).toBeDefined();
      expect(() => new Model(obj as never).validate()).not.toThrow();
    },
  );

  it('the schema check is real: a wrong type or a missing required field is refused', () => {
    const sts = structuredClone(find('StatefulSet')[0]);
    (sts.spec!.template.spec!.containers[0].ports![0] as { containerPort: unknown }).containerPort = '5514x';
    expect(() => new StatefulSet(sts).validate()).toThrow(/containerPort/);
    const svc = structuredClone(find('Service', 'sentinel-cef')[0]);
    delete (svc.spec!.ports![0] as { port?: number }).port;
    expect(() => new Service(svc).validate()).toThrow(/port/);
  });

  const sts = () => find('StatefulSet')[0];
  const pod = () => sts().spec!.template.spec!;
  const container = () => pod().containers[0];
  const config = () => forwarderConfigSchema.parse(JSON.parse(find('ConfigMap', 'sentinel-cef')[0].data!['forwarder.json']));

  it('the ConfigMap holds a forwarder config the forwarder accepts, mounted where the container reads it', () => {
    const c = config();
    const mount = container().volumeMounts!.find((m) => m.name === pod().volumes!.find((v) => v.configMap?.name === 'sentinel-cef')!.name)!;
    expect(container().args).toEqual(['--config', `${mount.mountPath}/forwarder.json`]);
    expect(c.sink.type).toBe('logs-ingestion');
    // The secret comes from the Secret through the environment, never from the ConfigMap.
    expect(JSON.stringify(c)).not.toMatch(/secret"\s*:/i);
    const ref = container().env!.find((e) => e.name === 'AZURE_CLIENT_SECRET')!.valueFrom!.secretKeyRef!;
    expect(ref.name).toBe(find('Secret')[0].metadata!.name);
    expect(find('Secret')[0].stringData![ref.key]).toBeDefined();
  });

  it('one replica per volume: the disk queue is on a volumeClaimTemplate, one ReadWriteOnce claim per pod', () => {
    const c = config();
    const claim = sts().spec!.volumeClaimTemplates![0];
    expect(claim.spec!.accessModes).toEqual(['ReadWriteOnce']);
    const mount = container().volumeMounts!.find((m) => m.name === claim.metadata!.name)!;
    expect(c.queue.dir.startsWith(`${mount.mountPath}/`)).toBe(true);
    expect(c.deadLetterFile!.startsWith(`${mount.mountPath}/`)).toBe(true);
    // No pod-level volume of that name would shadow the claim.
    expect(pod().volumes!.map((v) => v.name)).not.toContain(claim.metadata!.name);
    expect(sts().spec!.serviceName).toBe(find('Service', 'sentinel-cef-headless')[0].metadata!.name);
  });

  it('the readiness probe asks the forwarder readiness endpoint, and listeners, container ports and Service agree', () => {
    const c = config();
    const ready = parseHostPort(c.readiness as string, 'readiness');
    const ports = container().ports!;
    const portOf = (name: string | number) => {
      const p = ports.find((x) => x.name === name);
      if (!p) throw new Error(`no container port named ${name}`);
      return p;
    };
    expect(portOf(container().readinessProbe!.httpGet!.port).containerPort).toBe(ready.port);
    expect(ready.host).toBe('0.0.0.0'); // the kubelet probes the pod IP
    const listen = c.listen.map((u) => parseListenUrl(u));
    const svc = find('Service', 'sentinel-cef')[0];
    for (const p of svc.spec!.ports!) {
      const target = portOf(p.targetPort!);
      expect(target.protocol).toBe(p.protocol);
      expect(listen).toContainEqual(expect.objectContaining({ protocol: p.protocol!.toLowerCase(), port: target.containerPort }));
    }
    expect(new Set(svc.spec!.ports!.map((p) => `${p.port}/${p.protocol}`))).toEqual(new Set(['514/TCP', '514/UDP']));
  });

  it('a LoadBalancer Service with externalTrafficPolicy: Local (the device address survives, only ready nodes get traffic)', () => {
    const svc = find('Service', 'sentinel-cef')[0];
    expect(svc.spec!.type).toBe('LoadBalancer');
    expect(svc.spec!.externalTrafficPolicy).toBe('Local');
    expect(svc.spec!.selector).toEqual(sts().spec!.template.metadata!.labels);
  });

  it('stopping: the grace period covers preStop, the readiness grace and the drain', () => {
    const c = config();
    const preStop = container().lifecycle!.preStop!.exec!.command!;
    expect(preStop[0]).toBe('sleep');
    const total = Number(preStop[1]) + (c.drainGraceSec ?? 15) + c.drainTimeoutSec;
    expect(pod().terminationGracePeriodSeconds).toBeGreaterThan(total);
    // The probe turns not ready within the drain grace: the balancer stops sending before intake stops.
    const p = container().readinessProbe!;
    expect(p.periodSeconds! * p.failureThreshold!).toBeLessThan(c.drainGraceSec!);
  });

  it('non-root, read-only root filesystem, every capability dropped, none added (the pod listens above 1024)', () => {
    expect(pod().securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod().securityContext!.runAsUser).toBeGreaterThan(0);
    expect(container().securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    const listen = config().listen.map((u) => parseListenUrl(u));
    expect(Math.min(...listen.map((l) => l.port), parseHostPort(config().readiness as string, 'readiness').port)).toBeGreaterThanOrEqual(
      1024,
    );
  });
});
