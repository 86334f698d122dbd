"""`odconnect models list|create|show` and `labels add`."""
from __future__ import annotations

from ..output import when
from .base import command, seg


def label_names(model: dict) -> str:
    return ", ".join(t["name"] for t in model["labels"])


def models_list(session, args):
    models = session.api.get("/models", params={"includeArchived": str(args.archived).lower()})
    session.out.result(models, lambda: session.out.table(
        ["id", "name", "labels", "archived", "created (UTC)"],
        [(m["id"], m["name"], label_names(m), m["archived"], when(m["created"])) for m in models]))


def models_create(session, args):
    body = {"name": args.name, "labels": args.labels}
    if args.description:
        body["description"] = args.description
    model = session.api.post("/models", json=body)
    session.out.result(model, lambda: session.out.line(
        f"Created model {model['name']!r} (id {model['id']}) with labels: {label_names(model) or 'none'}"))


def models_show(session, args):
    api = session.api
    model = api.get(f"/models/{seg(args.model)}")
    datasets = api.get(f"/models/{model['id']}/datasets")
    versions = api.get(f"/models/{model['id']}/versions")
    data = {**model, "datasets": datasets, "versions": versions}

    def human():
        numbers = {v["id"]: v["number"] for v in versions}
        out = session.out
        out.line(f"Model {model['name']!r} (id {model['id']})" + (" [archived]" if model["archived"] else ""))
        if model.get("description"):
            out.line(model["description"])
        out.line(f"labels: {label_names(model) or 'none'}")
        out.line(f"published version: {numbers.get(model['publishedVersionId'], 'none')}; "
                 f"last trained: {numbers.get(model['lastTrainedVersionId'], 'none')}; versions: {len(versions)}")
        out.table(["dataset", "name", "kind", "images"],
                  [(d["id"], d["name"], d["kind"], d.get("imageCount")) for d in datasets])

    session.out.result(data, human)


def labels_add(session, args):
    added = session.api.post(f"/models/{seg(args.model)}/labels", json={"names": args.names})
    session.out.result(added, lambda: session.out.line(
        "Added labels: " + ", ".join(f"{t['name']} (id {t['id']})" for t in added)))


def register(sub) -> None:
    group = command(sub, "models", None, "list, create and show models",
                    "odconnect models create cutlery fork scissors")
    models = group.add_subparsers(dest="action", required=True, metavar="{list,create,show}")
    p = command(models, "list", models_list, "list the models", "odconnect models list --json | jq -r '.[].name'")
    p.add_argument("--archived", action="store_true", help="include archived models")
    p = command(models, "create", models_create, "create a model with the labels it will detect",
                "odconnect models create cutlery fork scissors --description 'kitchen drawer'")
    p.add_argument("name", help="the model's name (unique)")
    p.add_argument("labels", nargs="*", metavar="LABEL", help="the names of the objects it will detect")
    p.add_argument("--description")
    p = command(models, "show", models_show, "show a model: labels, datasets, published version",
                "odconnect models show cutlery")
    p.add_argument("model", help="model id or name")

    group = command(sub, "labels", None, "add labels to a model", "odconnect labels add cutlery spoon knife")
    labels = group.add_subparsers(dest="action", required=True, metavar="{add}")
    p = command(labels, "add", labels_add, "add labels to a model", "odconnect labels add cutlery spoon knife")
    p.add_argument("model", help="model id or name")
    p.add_argument("names", nargs="+", metavar="LABEL")
