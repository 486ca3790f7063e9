"""A stand-in for EmbarkStudios' SkyHook server, standard library only.

Like SkyHook's server it is an http.server.HTTPServer, which handles one
request at a time: POST {"FunctionName", "Parameters"} answers 200 with
{"Time", "Success", "ReturnValue", "Command"}; a function that raises
answers Success false with the traceback; SKY_LS lists the functions.

    python3 skyhook_standin.py PORT
"""
import json
import sys
import traceback
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer


def export_abc(path, frame_range=None):
    return {"written": path, "frames": frame_range or [1, 1]}


def explode():
    raise RuntimeError("no such node: pCube1")


FUNCTIONS = {"export_abc": export_abc, "explode": explode}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])).decode("utf-8"))
        name = body.get("FunctionName", "")
        params = body.get("Parameters", {})
        if name == "SKY_LS":
            ok, value = True, ["SKY_SHUTDOWN", "SKY_LS"] + sorted(FUNCTIONS)
        else:
            try:
                fn = FUNCTIONS.get(name)
                if fn is None:
                    raise ValueError("Function %s not found" % name)
                ok, value = True, fn(**params)
            except Exception:
                ok, value = False, traceback.format_exc()
        out = json.dumps({"Time": datetime.now().strftime("%H:%M:%S"), "Success": ok, "ReturnValue": value, "Command": name}).encode()
        self.send_response(200)
        self.send_header("Content-type", "application/json")
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("ready", flush=True)
    server.serve_forever()
