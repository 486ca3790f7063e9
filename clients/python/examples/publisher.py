"""A publisher tool: reads the comps of the After Effects that is open and
pushes the artist's context to it.

    python3 publisher.py /shots/sh010 comp
"""
import json
import sys

from dccbridge import Bridge


def main(folder, task):
    b = Bridge(app="pipeline", label="Publisher")
    try:
        items = b.call("aftereffects.get_items", comps=True, folders=False, footages=False, timeout=600)
        print("comps:", items if isinstance(items, list) else json.loads(items))
        took = b.context.set("aftereffects", project="demo", folder=folder, task=task)
        print("context taken by:", [s["instance"] for s in took["sessions"] if s["ok"]])
    finally:
        b.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
