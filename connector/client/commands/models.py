"""`odconnect models list|create|show|archive|restore` and `labels add`."""
from __future__ import annotations

from ..errors import LocalError
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


def models_archive(session, args):
    model = session.api.delete(f"/models/{seg(args.model)}")
    session.out.result(model, lambda: session.out.line(
        f"Archived model {model['name']!r} (id {model['id']}); its images and versions are kept: "
        f"`odconnect models restore {model['id']}` brings it back"))


def archived_model_id(session, model: str) -> int:
    """The id restore needs: given, or the one archived model of that name."""
    if model.isdigit():
        return int(model)
    found = [m for m in session.api.get("/models", params={"includeArchived": "true"})
             if m["archived"] and m["name"] == model]
    if len(found) != 1:
        many = f"{len(found)} archived models are" if found else "no archived model is"
        raise LocalError(f"{many} named {model!r}: give the id (odconnect models list --archived)")
    return found[0]["id"]


def models_restore(session, args):
    model = session.api.post(f"/models/{archived_model_id(session, args.model)}/restore")
    session.out.result(model, lambda: session.out.line(f"Restored model {model['name']!r} (id {model['id']})"))


def labels_add(session, args):
    added = session.api.post(f"/models/{seg(args.model)}/labels", json={"names": args.names})
    session.out.result(added, lambda: session.out.line(
        "Added labels: " + ", ".join(f"{t['name']} (id {t['id']})" for t in added)))


def register(sub) -> None:
    group = command(sub, "models", None, "list, create, show, archive and restore models",
                    "odconnect models create cutlery fork scissors")
    models = group.add_subparsers(dest="action", required=True, metavar="{list,create,show,archive,restore}")
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
    p = command(models, "archive", models_archive, "archive a model: hidden from lists, its data kept",
                "odconnect models archive cutlery",
                description="Archives the model (DELETE /models/{model}); its images, versions and history "
                            "stay on the server and `models restore` brings it back. A model that is training "
                            "is refused until its run ends or is canceled.")
    p.add_argument("model", help="model id or name")
    p = command(models, "restore", models_restore, "bring an archived model back",
                "odconnect models restore 3          # the id from: odconnect models list --archived")
    p.add_argument("model", help="the archived model's id, or its name when one archived model has it")

    group = command(sub, "labels", None, "add labels to a model", "odconnect labels add cutlery spoon knife")
    labels = group.add_subparsers(dest="action", required=True, metavar="{add}")
    p = command(labels, "add", labels_add, "add labels to a model", "odconnect labels add cutlery spoon knife")
    p.add_argument("model", help="model id or name")
    p.add_argument("names", nargs="+", metavar="LABEL")
