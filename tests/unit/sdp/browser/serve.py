import http.server, os, subprocess, tempfile
import sys
BIN = sys.argv[1]  # path to build-*/tests/unit/sdp/test_sdp
OUT = sys.argv[2] if len(sys.argv) > 2 else '/tmp/sdp-browser'
os.makedirs(OUT, exist_ok=True)
class H(http.server.SimpleHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers['Content-Length'])
        d = self.rfile.read(n)
        name = self.path.strip('/').replace('/', '_') or 'post'
        body = b'ok'
        if name == 'answer':
            with tempfile.NamedTemporaryFile(delete=False) as f:
                f.write(d)
            r = subprocess.run([BIN, '--answer', f.name], capture_output=True)
            body = r.stdout if r.returncode == 0 else b'ERROR ' + r.stderr
            open(OUT + '/out_pubans_' + str(len(d)), 'wb').write(body)
        elif name.startswith('suboffer'):
            parts = name.split('_'); k = parts[1]
            r = subprocess.run([BIN, '--sub-offer', k] + parts[2:], capture_output=True)
            body = r.stdout
        else:
            open(OUT + '/out_' + name, 'wb').write(d)
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
os.chdir(os.path.dirname(os.path.abspath(__file__)))
http.server.ThreadingHTTPServer(('127.0.0.1', 8766), H).serve_forever()
