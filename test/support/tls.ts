import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';

/**
 * A self-signed certificate for 127.0.0.1 and localhost, made by openssl into `dir` (P-256: fast):
 * cert.pem and key.pem. Returns the paths and the certificate (a client's `ca`).
 */
export function makeCertificate(dir: string, name = 'cert'): { certFile: string; keyFile: string; cert: Buffer } {
  const certFile = path.join(dir, `${name}.pem`);
  const keyFile = path.join(dir, `${name}-key.pem`);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=tollgate-test-${name}`,
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: 'ignore' });
  return { certFile, keyFile, cert: readFileSync(certFile) };
}

export type HttpsAnswer = { status: number; headers: Record<string, string | string[] | undefined>; body: any; peer: tls.PeerCertificate };

/** One request over HTTPS that trusts only `ca`, on a new connection (no keep-alive). */
export function httpsRequest(url: string, options: { ca: Buffer; method?: string; headers?: Record<string, string>; body?: unknown }): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    const req = https.request(url, {
      method: options.method ?? (payload ? 'POST' : 'GET'),
      ca: options.ca,
      agent: false,
      headers: { ...(payload ? { 'content-type': 'application/json' } : {}), ...options.headers },
    }, (res) => {
      const peer = (res.socket as tls.TLSSocket).getPeerCertificate();
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: kept as text
        }
        resolve({ status: res.statusCode!, headers: res.headers, body, peer });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** The SHA-256 fingerprint of a PEM certificate, as tls.PeerCertificate.fingerprint256 writes it. */
export function fingerprint(cert: Buffer): string {
  return new X509Certificate(cert).fingerprint256;
}
