"""GL rasterizer backend: triangle ids and barycentrics from OpenGL through moderngl on EGL.

As nvdiffrast's GL path does, a shader writes each pixel's primitive id and perspective-correct
barycentrics; gen3d keeps the ids and recomputes the barycentrics in torch so that gradients
flow. On a CPU-only machine EGL runs on Mesa's llvmpipe; on a GPU machine, on the GPU's driver.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

_VERTEX_SHADER = """
#version 330
in vec4 in_clip;
void main() {
    gl_Position = in_clip;
}
"""

# Each triangle is drawn as its screen bounding box grown by one pixel (the whole viewport when
# it crosses the camera plane): a conservative cover, so the driver's fixed-point edge snapping
# never decides coverage. The fragment shader then decides it exactly, in float32, with the same
# homogeneous edge functions as the torch backend, and writes the exact depth.
_GEOMETRY_SHADER = """
#version 330
layout(triangles) in;
layout(triangle_strip, max_vertices = 4) out;
uniform vec2 u_pixel;  // one pixel in NDC: (2 / W, 2 / H)
flat out vec4 g_c0;
flat out vec4 g_c1;
flat out vec4 g_c2;
flat out int g_id;
void main() {
    vec4 c0 = gl_in[0].gl_Position, c1 = gl_in[1].gl_Position, c2 = gl_in[2].gl_Position;
    if (c0.w <= 0.0 && c1.w <= 0.0 && c2.w <= 0.0) return;
    vec2 lo = vec2(-1.0), hi = vec2(1.0);
    if (c0.w > 0.0 && c1.w > 0.0 && c2.w > 0.0) {
        vec2 n0 = c0.xy / c0.w, n1 = c1.xy / c1.w, n2 = c2.xy / c2.w;
        lo = max(min(min(n0, n1), n2) - u_pixel, vec2(-1.0));
        hi = min(max(max(n0, n1), n2) + u_pixel, vec2(1.0));
        if (any(greaterThan(lo, hi))) return;
    }
    vec2 corners[4] = vec2[4](vec2(lo.x, lo.y), vec2(hi.x, lo.y), vec2(lo.x, hi.y), vec2(hi.x, hi.y));
    for (int i = 0; i < 4; ++i) {
        g_c0 = c0; g_c1 = c1; g_c2 = c2; g_id = gl_PrimitiveIDIn;
        gl_Position = vec4(corners[i], 0.0, 1.0);
        EmitVertex();
    }
    EndPrimitive();
}
"""

_FRAGMENT_SHADER = """
#version 330
uniform vec2 u_size;
flat in vec4 g_c0;
flat in vec4 g_c1;
flat in vec4 g_c2;
flat in int g_id;
uniform bool u_with_bary;
layout(location = 0) out vec4 frag;
void main() {
    vec2 p = gl_FragCoord.xy * 2.0 / u_size - 1.0;  // pixel centre in NDC
    vec3 bary;
    float z;
    if (g_c0.w > 0.0 && g_c1.w > 0.0 && g_c2.w > 0.0) {
        // In front of the camera: oriented sub-triangle areas of n_i - p (accurate for small
        // triangles), z_ndc from its screen-space plane; the same formulas as the torch backend.
        vec2 n0 = g_c0.xy / g_c0.w, n1 = g_c1.xy / g_c1.w, n2 = g_c2.xy / g_c2.w;
        vec2 d0 = n0 - p, d1 = n1 - p, d2 = n2 - p;
        vec3 s = vec3(d1.x * d2.y - d1.y * d2.x, d2.x * d0.y - d2.y * d0.x, d0.x * d1.y - d0.y * d1.x);
        vec2 e1 = n1 - n0, e2 = n2 - n0;
        float area = e1.x * e2.y - e1.y * e2.x;
        if (area == 0.0) discard;
        if (s.x * sign(area) < 0.0 || s.y * sign(area) < 0.0 || s.z * sign(area) < 0.0) discard;
        float z0 = g_c0.z / g_c0.w, dz1 = g_c1.z / g_c1.w - z0, dz2 = g_c2.z / g_c2.w - z0;
        float gx = (dz1 * e2.y - dz2 * e1.y) / area, gy = (e1.x * dz2 - e2.x * dz1) / area;
        z = z0 + gx * (p.x - n0.x) + gy * (p.y - n0.y);
        s /= vec3(g_c0.w, g_c1.w, g_c2.w);
        bary = s / (s.x + s.y + s.z);
    } else {
        // Crossing the camera plane: homogeneous edge functions (Olano & Greer 1997).
        vec3 q = vec3(p, 1.0);
        vec3 v0 = g_c0.xyw, v1 = g_c1.xyw, v2 = g_c2.xyw;
        vec3 e0 = cross(v1, v2), e1 = cross(v2, v0), e2 = cross(v0, v1);
        float det = dot(v0, e0);
        if (det == 0.0) discard;
        vec3 b = vec3(dot(e0, q), dot(e1, q), dot(e2, q)) / det;
        if (b.x < 0.0 || b.y < 0.0 || b.z < 0.0) discard;
        z = b.x * g_c0.z + b.y * g_c1.z + b.z * g_c2.z;
        bary = b / (b.x + b.y + b.z);
    }
    if (z < -1.0 || z > 1.0) discard;
    gl_FragDepth = 0.5 * z + 0.5;
    frag = u_with_bary ? vec4(float(g_id + 1), bary.x, bary.y, z) : vec4(float(g_id + 1));
}
"""

MAX_FACES = 1 << 24  # ids travel as float32: exact up to 2^24


@functools.lru_cache(maxsize=1)
def _context():
    try:
        import moderngl
    except ImportError as exc:
        raise ImportError("the 'gl' rasterizer backend needs moderngl: pip install moderngl") from exc
    # Mesa's llvmpipe and triton (which torch._dynamo, hence torch.optim, imports) each bring an
    # LLVM; loading triton after an EGL context exists segfaults. Load it first.
    import torch._dynamo  # noqa: F401

    ctx = moderngl.create_standalone_context(backend="egl")
    program = ctx.program(vertex_shader=_VERTEX_SHADER, geometry_shader=_GEOMETRY_SHADER,
                          fragment_shader=_FRAGMENT_SHADER)
    return ctx, program


@functools.lru_cache(maxsize=1)
def gl_available() -> bool:
    """Whether an EGL context can be created here (moderngl installed, EGL driver present)."""
    try:
        _context()
    except Exception:  # any failure (missing module, no EGL display, driver error) means "no"
        return False
    return True


def gl_renderer_name() -> str:
    ctx, _ = _context()
    return ctx.info["GL_RENDERER"]


@torch.no_grad()
def rasterize_ids_gl(clip: torch.Tensor, faces: torch.Tensor, height: int, width: int,
                     with_barycentrics: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, H, W) triangle ids (-1 background) on the CPU, and the shader's (B, H, W, 3) barycentrics
    when asked for (the rasterize() path recomputes them in torch, with gradients)."""
    import moderngl

    if faces.shape[0] >= MAX_FACES:
        raise ValueError(f"the gl backend handles up to {MAX_FACES - 1} faces; use backend='torch'")
    ctx, program = _context()
    faces_np = faces.cpu().numpy().astype(np.int32)
    index_buffer = ctx.buffer(faces_np.tobytes())
    channels = 4 if with_barycentrics else 1
    color = ctx.texture((width, height), channels, dtype="f4")
    depth = ctx.depth_texture((width, height))
    program["u_pixel"].value = (2.0 / width, 2.0 / height)
    program["u_size"].value = (float(width), float(height))
    program["u_with_bary"].value = with_barycentrics
    fbo = ctx.framebuffer(color_attachments=[color], depth_attachment=depth)
    ids, barys = [], []
    try:
        fbo.use()
        ctx.viewport = (0, 0, width, height)
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.disable(moderngl.CULL_FACE)
        for view_clip in clip.float().cpu().numpy():
            position_buffer = ctx.buffer(np.ascontiguousarray(view_clip).tobytes())  # (V, 4)
            vao = ctx.vertex_array(program, [(position_buffer, "4f", "in_clip")], index_buffer=index_buffer,
                                   index_element_size=4)
            fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            vao.render(moderngl.TRIANGLES)
            pixels = np.frombuffer(fbo.read(components=channels, dtype="f4"), dtype=np.float32)
            pixels = pixels.reshape(height, width, channels)[::-1]  # GL rows start at the bottom
            ids.append(pixels[..., 0].astype(np.int64) - 1)
            if with_barycentrics:
                b0, b1 = pixels[..., 1], pixels[..., 2]
                barys.append(np.stack([b0, b1, 1.0 - b0 - b1], axis=-1) * (pixels[..., :1] > 0))
            vao.release()
            position_buffer.release()
    finally:
        fbo.release()
        color.release()
        depth.release()
        index_buffer.release()
    return torch.from_numpy(np.stack(ids)), torch.from_numpy(np.stack(barys)) if with_barycentrics else None
