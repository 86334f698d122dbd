"""Adaptive training sample selection (ATSS, Zhang et al. 2020) for RetinaNet.

RetinaNet calls an anchor positive when its IoU with a box reaches a fixed 0.5. That threshold
suits boxes the anchor set was built for and starves small or oddly shaped ones (few anchors reach
0.5) while flooding large ones. ATSS asks each box instead: of the ``topk`` anchors per pyramid
level whose centres lie nearest the box's centre, which have an IoU above the candidates' mean +
standard deviation (and their centre inside the box)? Those are its positives; everything else is
background. Only training changes: the network, its outputs and inference are RetinaNet's, so a
trained model loads, exports and serves like any RetinaNet.
"""

from __future__ import annotations

import torch
from detectron2.config import CfgNode
from detectron2.modeling import build_model
from detectron2.modeling.meta_arch.retinanet import RetinaNet
from detectron2.structures import Boxes, pairwise_iou

__all__ = ["ATSS_TOPK", "ASSIGNERS", "atss_assign", "ATSSRetinaNet", "build_training_model"]

ATSS_TOPK = 9  # candidates per level and box (the paper's value; results are flat from 7 to 17)
ASSIGNERS = ("iou", "atss")  # the values of cfg.ODCONNECT.ASSIGNER


def atss_assign(anchors: list[Boxes], gt_boxes: Boxes, topk: int = ATSS_TOPK,
                anchors_per_location: int = 1) -> torch.Tensor:
    """Index of the box each anchor (all levels, concatenated) is assigned to, or -1 for background.
    With several anchors per location (RetinaNet's 9 shapes), each level offers ``topk`` locations'
    worth of candidates, as the ATSS reference code does."""
    all_anchors = Boxes.cat(anchors)
    n_gt, n_anchors = len(gt_boxes), len(all_anchors)
    if n_gt == 0:
        return torch.full((n_anchors,), -1, dtype=torch.long, device=all_anchors.device)
    gt_centers = gt_boxes.get_centers()
    candidates, start = [], 0
    for level in anchors:  # the topk anchors nearest each box's centre, per level
        distance = torch.cdist(gt_centers, level.get_centers())
        k = min(topk * anchors_per_location, len(level))
        candidates.append(distance.topk(k, dim=1, largest=False).indices + start)
        start += len(level)
    candidates = torch.cat(candidates, dim=1)  # (G, K)
    iou = pairwise_iou(gt_boxes, all_anchors)  # (G, R)
    candidate_iou = iou.gather(1, candidates)
    threshold = candidate_iou.mean(dim=1, keepdim=True) + candidate_iou.std(dim=1, keepdim=True)
    centers = all_anchors.get_centers()[candidates]  # (G, K, 2)
    box = gt_boxes.tensor[:, None, :]
    inside = ((centers[..., 0] > box[..., 0]) & (centers[..., 0] < box[..., 2])
              & (centers[..., 1] > box[..., 1]) & (centers[..., 1] < box[..., 3]))
    positive = (candidate_iou >= threshold) & inside
    # An anchor positive for several boxes goes to the one it overlaps most.
    masked = torch.full_like(iou, -1.0)
    masked.scatter_(1, candidates, torch.where(positive, candidate_iou, torch.full_like(candidate_iou, -1.0)))
    best_iou, best_gt = masked.max(dim=0)
    return torch.where(best_iou >= 0, best_gt, torch.full_like(best_gt, -1))


class ATSSRetinaNet(RetinaNet):
    """RetinaNet whose anchors are labelled by :func:`atss_assign` instead of a fixed IoU. Not
    registered: the saved config names plain RetinaNet, which loads these weights unchanged."""

    @torch.no_grad()
    def label_anchors(self, anchors, gt_instances):
        gt_labels, matched_gt_boxes = [], []
        n_anchors = sum(len(a) for a in anchors)
        for gt in gt_instances:
            assigned = atss_assign(anchors, gt.gt_boxes, anchors_per_location=self.anchor_generator.num_cell_anchors[0])
            foreground = assigned >= 0
            index = assigned.clamp(min=0)
            if len(gt) > 0:
                labels = gt.gt_classes[index].clone()
                boxes = gt.gt_boxes.tensor[index]
            else:
                labels = torch.zeros_like(assigned)
                boxes = torch.zeros((n_anchors, 4), device=assigned.device)
            labels[~foreground] = self.num_classes
            gt_labels.append(labels)
            matched_gt_boxes.append(boxes)
        return gt_labels, matched_gt_boxes


def build_training_model(cfg: CfgNode) -> torch.nn.Module:
    """The model to train: ``build_model(cfg)``, with ATSS labelling when ``ODCONNECT.ASSIGNER`` asks."""
    assigner = cfg.ODCONNECT.ASSIGNER
    if assigner not in ASSIGNERS:
        raise ValueError(f"ODCONNECT.ASSIGNER must be one of {list(ASSIGNERS)}, got {assigner!r}")
    if assigner == "iou":
        return build_model(cfg)
    if cfg.MODEL.META_ARCHITECTURE != "RetinaNet":
        raise ValueError(f"ODCONNECT.ASSIGNER 'atss' needs RetinaNet, not {cfg.MODEL.META_ARCHITECTURE}")
    return ATSSRetinaNet(cfg).to(torch.device(cfg.MODEL.DEVICE))
