// Batched matrix multiply C = op(A) · op(B), op = optional transpose, on adapters with 8-wide
// subgroups: one subgroup per 16×32 tile of C, each element of A and B loaded once per depth.
// The step and the write-out are in subgroup_tile.wgsl, the parameters and bindings in
// matmul_common.wgsl, both prepended to this file.

@compute @workgroup_size(8)
fn matmul(
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let origin = tile_origin(wid, groups, p.n);
    let row0 = origin.x;
    let col0 = origin.y;
    if (row0 >= p.m) {
        return;
    }
    // Rows and columns past the matrix read its last row or column; their sums are not stored.
    let rows = min(lane_rows(row0, lane), vec2<u32>(p.m - 1u));
    let cols = lane_columns(col0, lane);
    let cols_in = min(cols, vec4<u32>(p.n - 1u));
    // Indices of A(rows, 0) and B(0, cols), and the steps from one depth to the next.
    var a_at = wid.z * p.a_batch_stride + select(rows * p.k, rows, p.trans_a != 0u);
    let a_step = select(1u, p.m, p.trans_a != 0u);
    var b_at = wid.z * p.b_batch_stride + select(cols_in, cols_in * p.k, p.trans_b != 0u);
    let b_step = select(p.n, 1u, p.trans_b != 0u);
    var acc: array<vec4<f32>, 16>;
    for (var k = 0u; k < p.k; k++) {
        let a_k = vec2<f32>(a[a_at.x], a[a_at.y]);
        let b_k = vec4<f32>(w_at(b_at.x), w_at(b_at.y), w_at(b_at.z), w_at(b_at.w));
        a_at += a_step;
        b_at += b_step;
        rank1_update(&acc, a_k, b_k);
    }
    store_lane_tile(Dest(wid.z * p.c_batch_stride, p.n, p.m, p.n), &acc, row0, cols);
}
