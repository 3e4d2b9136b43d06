"""Front-view orientation: the turn that makes the camera which took the picture the front one, checked
against renders of the same shape from known ring cameras; quarter turns of decoded shapes in the
extraction checked against extracting the turned field directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from gen3d.stages.shape_dit.orient import ConditionViews, front_turn, silhouettes, turn_matrix
from gen3d.stages.shape_vae.mesh import latent_to_mesh
from gen3d.types import Mesh

VIEWS = ConditionViews()


def _boxes(*bounds) -> Mesh:
    parts = [trimesh.creation.box(bounds=np.asarray(b, float)) for b in bounds]
    mesh = trimesh.util.concatenate(parts)
    return Mesh(vertices=np.asarray(mesh.vertices), faces=np.asarray(mesh.faces))


def _turned(mesh: Mesh, degrees: float) -> Mesh:
    return Mesh(vertices=mesh.vertices @ turn_matrix(degrees).T, faces=mesh.faces)


# A long low bar along X with a tower at its +X end on the +Z half: no two ring cameras see the same outline.
L_SHAPE = _boxes([[-0.9, -0.5, -0.3], [0.9, -0.2, 0.3]], [[0.5, -0.2, 0.0], [0.9, 0.6, 0.3]])


def test_turn_matrix_follows_the_azimuth_convention():
    assert np.allclose(turn_matrix(90) @ [0, 0, 1], [1, 0, 0], atol=1e-12)  # +Z turns toward +X
    assert np.allclose(turn_matrix(30) @ turn_matrix(60), turn_matrix(90))
    assert np.allclose(turn_matrix(37) @ turn_matrix(37).T, np.eye(3)) and np.isclose(np.linalg.det(turn_matrix(37)), 1)


def test_the_ring_cameras_see_different_outlines_of_the_test_shape():
    masks = silhouettes(L_SHAPE, VIEWS, 64)
    iou = (masks[:, None] & masks[None]).sum((2, 3)) / (masks[:, None] | masks[None]).sum((2, 3))
    assert iou[~np.eye(4, dtype=bool)].max() < 0.8


@pytest.mark.parametrize("camera", [0, 1, 3])
def test_front_turn_finds_the_camera_that_took_the_picture(camera):
    picture = silhouettes(L_SHAPE, VIEWS, 64)[camera]  # the shape photographed from ring camera `camera`
    turn = front_turn(L_SHAPE, picture, VIEWS)
    assert np.isclose(turn % 360, -VIEWS.azimuths[camera] % 360)
    front = silhouettes(_turned(L_SHAPE, turn), VIEWS, 64)[0]  # the turned shape seen from the front camera
    assert (front & picture).sum() / (front | picture).sum() > 0.97


def test_the_camera_behind_is_never_chosen():
    """From behind, the outline is the front one mirrored: even where it matches better (here exactly),
    the shape is not turned round (the next best camera is a quarter turn, which matches far worse)."""
    picture = silhouettes(L_SHAPE, VIEWS, 64)[2]
    assert front_turn(L_SHAPE, picture, VIEWS) == 0.0


def test_a_shape_that_looks_alike_from_every_camera_stays_put():
    cylinder = trimesh.creation.cylinder(radius=0.5, height=1.2, sections=64)
    mesh = Mesh(vertices=np.asarray(cylinder.vertices), faces=np.asarray(cylinder.faces))
    picture = silhouettes(mesh, VIEWS, 64)[2]
    assert front_turn(mesh, picture, VIEWS) == 0.0


class FieldVAE:
    """Stands in for the VAE: 'decodes' a latent to itself and queries an analytic field whose occupancy
    is an ellipsoid with the latent's semi-axes (along X, Y, Z, first three numbers) and centre (last three)."""

    def decode(self, z):
        return z

    def query(self, planes, points):  # (N, 6) axes and centres, (N, M, 3) points -> (N, M) logits
        axes, centres = planes[:, None, :3], planes[:, None, 3:]
        return 8.0 * (1.0 - (((points - centres) / axes) ** 2).sum(-1))


def _ellipsoid(axes, centre) -> torch.Tensor:
    return torch.tensor([[*axes, *centre]], dtype=torch.float64)  # (1, 6)


def test_turning_decoded_shapes_equals_extracting_the_turned_shapes():
    axes, centre = np.array([0.6, 0.3, 0.35]), np.array([0.25, 0.0, 0.1])
    quarter = turn_matrix(90)
    original = _ellipsoid(axes, centre)  # long along X, off centre: no quarter turn maps it onto itself
    turned_by_hand = _ellipsoid(np.abs(quarter @ axes), quarter @ centre)
    turned, _ = latent_to_mesh(FieldVAE(), original, resolution=32, method="dense", rotations=quarter[None])
    direct, _ = latent_to_mesh(FieldVAE(), turned_by_hand, resolution=32, method="dense")
    assert turned.num_faces == direct.num_faces
    assert np.allclose(np.sort(turned.vertices, axis=0), np.sort(direct.vertices, axis=0), atol=1e-6)
    # An ensemble with one member turned: the mean occupancy of the original and the turned ellipsoid.
    pair, _ = latent_to_mesh(FieldVAE(), torch.cat([original, original]), resolution=32, method="dense",
                             rotations=np.stack([np.eye(3), quarter]))
    reference, _ = latent_to_mesh(FieldVAE(), torch.cat([original, turned_by_hand]), resolution=32, method="dense")
    assert np.allclose(np.sort(pair.vertices, axis=0), np.sort(reference.vertices, axis=0), atol=1e-6)


def test_the_shared_coarse_lattice_gives_the_surface_of_a_fresh_extraction():
    """DecodedLatents computes each shape's coarse lattice once (for the per-sample meshes) and builds the
    ensemble's coarse level from it, turned: the result equals a hierarchical extraction that queries
    the turned ensemble field from scratch; each per-sample mesh equals a dense extraction at COARSE."""
    from gen3d.stages.shape_vae.extract import extract_dense, extract_hierarchical
    from gen3d.stages.shape_vae.mesh import COARSE, LOGIT_BAND, DecodedLatents, turn_lattice

    z = torch.cat([_ellipsoid([0.6, 0.3, 0.35], [0.25, 0.0, 0.1]), _ellipsoid([0.3, 0.5, 0.5], [0.0, 0.1, -0.2])])
    rotations = np.stack([turn_matrix(90), turn_matrix(180)])
    decoded = DecodedLatents(FieldVAE(), z)
    singles = decoded.sample_meshes()
    shared, stats = decoded.to_mesh(2 * COARSE, rotations=rotations)
    fresh, fresh_stats = extract_hierarchical(DecodedLatents(FieldVAE(), z).field(rotations), 2 * COARSE,
                                              coarse=COARSE, band=LOGIT_BAND)
    assert shared.num_faces == fresh.num_faces and stats.queries == fresh_stats.queries
    assert np.allclose(np.sort(shared.vertices, axis=0), np.sort(fresh.vertices, axis=0), atol=1e-5)
    for k, single in enumerate(singles):
        dense, _ = extract_dense(DecodedLatents(FieldVAE(), z[k: k + 1]).field(), COARSE)
        assert np.allclose(np.sort(single.vertices, axis=0), np.sort(dense.vertices, axis=0), atol=1e-5)
    with pytest.raises(ValueError, match="quarter turn"):
        turn_lattice(decoded.coarse_logits()[0], turn_matrix(45))
