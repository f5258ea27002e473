// Shared by matmul_subgroup.wgsl and conv2d_subgroup.wgsl (prepended to each when the pipeline
// is built): a GEMM step for adapters whose subgroups are exactly 8 invocations wide.
//
// Where those run on a CPU (lavapipe and other Vulkan-on-CPU drivers), the 8 invocations of a
// subgroup are the 8 lanes of one vector register: arithmetic is vectorised, but every load or
// store of workgroup or storage memory is done lane by lane, with a branch per lane. A GEMM there
// is bound by how many elements each invocation loads per multiply-add, so these kernels load
// each element of A and B once per depth and share it through the subgroup instead of through
// workgroup memory: a workgroup is one subgroup and computes a 16×32 tile of the output. Lane l
// owns the tile's columns l, l + 8, l + 16, l + 24 and fetches A at the tile's rows l and l + 8;
// subgroupBroadcast hands every lane each row's value, one vector instruction per row.

const SG_ROWS: u32 = 16u; // output rows per workgroup
const SG_COLS: u32 = 32u; // output columns per workgroup

// (row0, col0) of the tile workgroup `wid` computes in a GEMM of `cols` columns. Tiles are
// numbered row by row and spread over the grid's x and y (`groups` workgroups along each) to stay
// within the per-dimension dispatch limit; the grid's spare workgroups get a row0 past the end.
fn tile_origin(wid: vec3<u32>, groups: vec3<u32>, cols: u32) -> vec2<u32> {
    let tile = wid.y * groups.x + wid.x;
    let col_tiles = (cols + SG_COLS - 1u) / SG_COLS;
    return vec2<u32>(tile / col_tiles * SG_ROWS, tile % col_tiles * SG_COLS);
}

// The tile's columns this lane owns, from the tile's first column.
fn lane_columns(col0: u32, lane: u32) -> vec4<u32> {
    return col0 + lane + vec4<u32>(0u, 8u, 16u, 24u);
}

// The tile's rows this lane fetches A for, from the tile's first row.
fn lane_rows(row0: u32, lane: u32) -> vec2<u32> {
    return row0 + lane + vec2<u32>(0u, 8u);
}

// One depth of the GEMM: acc[r] += A(row0 + r) · B(this lane's columns), r in 0..16, where `a`
// holds A at this lane's rows (lane_rows) and `b` holds B at its columns (lane_columns).
fn rank1_update(acc: ptr<function, array<vec4<f32>, 16>>, a: vec2<f32>, b: vec4<f32>) {
    let s0 = subgroupBroadcast(a, 0u);
    (*acc)[0] = fma(vec4<f32>(s0.x), b, (*acc)[0]);
    (*acc)[8] = fma(vec4<f32>(s0.y), b, (*acc)[8]);
    let s1 = subgroupBroadcast(a, 1u);
    (*acc)[1] = fma(vec4<f32>(s1.x), b, (*acc)[1]);
    (*acc)[9] = fma(vec4<f32>(s1.y), b, (*acc)[9]);
    let s2 = subgroupBroadcast(a, 2u);
    (*acc)[2] = fma(vec4<f32>(s2.x), b, (*acc)[2]);
    (*acc)[10] = fma(vec4<f32>(s2.y), b, (*acc)[10]);
    let s3 = subgroupBroadcast(a, 3u);
    (*acc)[3] = fma(vec4<f32>(s3.x), b, (*acc)[3]);
    (*acc)[11] = fma(vec4<f32>(s3.y), b, (*acc)[11]);
    let s4 = subgroupBroadcast(a, 4u);
    (*acc)[4] = fma(vec4<f32>(s4.x), b, (*acc)[4]);
    (*acc)[12] = fma(vec4<f32>(s4.y), b, (*acc)[12]);
    let s5 = subgroupBroadcast(a, 5u);
    (*acc)[5] = fma(vec4<f32>(s5.x), b, (*acc)[5]);
    (*acc)[13] = fma(vec4<f32>(s5.y), b, (*acc)[13]);
    let s6 = subgroupBroadcast(a, 6u);
    (*acc)[6] = fma(vec4<f32>(s6.x), b, (*acc)[6]);
    (*acc)[14] = fma(vec4<f32>(s6.y), b, (*acc)[14]);
    let s7 = subgroupBroadcast(a, 7u);
    (*acc)[7] = fma(vec4<f32>(s7.x), b, (*acc)[7]);
    (*acc)[15] = fma(vec4<f32>(s7.y), b, (*acc)[15]);
}

// Writes this lane's columns of GEMM row r.
fn store_lane_row(d: Dest, r: u32, cols: vec4<u32>, v: vec4<f32>) {
    if (r >= d.rows) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        store_at(d, r, cols[j], v[j]);
    }
}

// Writes the tile at row0 (this lane's columns `cols`). Constant indices keep acc in registers.
fn store_lane_tile(d: Dest, acc: ptr<function, array<vec4<f32>, 16>>, row0: u32, cols: vec4<u32>) {
    store_lane_row(d, row0 + 0u, cols, (*acc)[0]);
    store_lane_row(d, row0 + 1u, cols, (*acc)[1]);
    store_lane_row(d, row0 + 2u, cols, (*acc)[2]);
    store_lane_row(d, row0 + 3u, cols, (*acc)[3]);
    store_lane_row(d, row0 + 4u, cols, (*acc)[4]);
    store_lane_row(d, row0 + 5u, cols, (*acc)[5]);
    store_lane_row(d, row0 + 6u, cols, (*acc)[6]);
    store_lane_row(d, row0 + 7u, cols, (*acc)[7]);
    store_lane_row(d, row0 + 8u, cols, (*acc)[8]);
    store_lane_row(d, row0 + 9u, cols, (*acc)[9]);
    store_lane_row(d, row0 + 10u, cols, (*acc)[10]);
    store_lane_row(d, row0 + 11u, cols, (*acc)[11]);
    store_lane_row(d, row0 + 12u, cols, (*acc)[12]);
    store_lane_row(d, row0 + 13u, cols, (*acc)[13]);
    store_lane_row(d, row0 + 14u, cols, (*acc)[14]);
    store_lane_row(d, row0 + 15u, cols, (*acc)[15]);
}
