/** The nginx baseline of the proxy benchmarks. */

/**
 * The forwarding headers Vane sets on every request (for a client outside --trusted-proxies),
 * set by nginx too, as ingress-nginx's template does: the baseline does the same job.
 */
export const FORWARDING = ['X-Request-ID $request_id', 'X-Real-IP $remote_addr', 'X-Forwarded-For $remote_addr', 'X-Forwarded-Host $host',
  'X-Forwarded-Port $server_port', 'X-Forwarded-Proto $scheme'].map((h) => `proxy_set_header ${h};`).join(' ');

/** nginxConf is one worker, no access log, temp paths under `dir`, and `body` inside `http {}`. */
export function nginxConf(dir: string, body: string): string {
  return `worker_processes 1;\ndaemon off;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log warn;\nevents { worker_connections 4096; }\nhttp {\n  access_log off;\n  client_body_temp_path ${dir}/body;\n  proxy_temp_path ${dir}/proxy;\n  fastcgi_temp_path ${dir}/fastcgi;\n  uwsgi_temp_path ${dir}/uwsgi;\n  scgi_temp_path ${dir}/scgi;\n  keepalive_requests 1000000;\n${body}\n}\n`;
}
