// 2-D convolution forward pass as an implicit GEMM on adapters with 8-wide subgroups (same
// GEMM as conv2d.wgsl: rows are output pixels, columns the output channels of one group, depth
// (kh, kw, input channel)). One subgroup computes a 16×32 tile; a lane fetches the input under
// each tap for its two output pixels, and the kernel row for its four output channels.
// workgroup_id.z is the group. The step and the write-out are in subgroup_tile.wgsl, and the
// geometry and bindings in conv_common.wgsl, both prepended to this file.

@compute @workgroup_size(8)
fn conv2d(
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let origin = tile_origin(wid, groups, p.out_per_group);
    let row0 = origin.x;
    let col0 = origin.y;
    if (row0 >= p.rows) {
        return;
    }
    let group = wid.z;
    // This lane's output pixels; rows past the end repeat the last pixel and are not stored.
    let rows = min(lane_rows(row0, lane), vec2<u32>(p.rows - 1u));
    let ohw = p.out_h * p.out_w;
    let n = rows / ohw;
    let oh = (rows % ohw) / p.out_w;
    let ow = rows % p.out_w;
    let top = vec2<i32>(oh * p.stride_h) - i32(p.pad_top);
    let left = vec2<i32>(ow * p.stride_w) - i32(p.pad_left);
    let cols = lane_columns(col0, lane);
    // Index of w(0, 0, 0, column); each depth step moves one kernel row (out_c) further.
    var b_at = group * p.out_per_group + min(cols, vec4<u32>(p.out_per_group - 1u));
    var acc: array<vec4<f32>, 16>;
    for (var kh = 0u; kh < p.kernel_h; kh++) {
        let ih = top + i32(kh * p.dilation_h);
        for (var kw = 0u; kw < p.kernel_w; kw++) {
            let iw = left + i32(kw * p.dilation_w);
            // Taps in the padding read a pixel inside the image and use zero instead.
            let inside = (ih >= vec2<i32>(0)) & (ih < vec2<i32>(i32(p.in_h)))
                & (iw >= vec2<i32>(0)) & (iw < vec2<i32>(i32(p.in_w)));
            let h = vec2<u32>(clamp(ih, vec2<i32>(0), vec2<i32>(i32(p.in_h) - 1)));
            let w_ = vec2<u32>(clamp(iw, vec2<i32>(0), vec2<i32>(i32(p.in_w) - 1)));
            var a_at = p.x_offset + ((n * p.in_h + h) * p.in_w + w_) * p.in_c + group * p.in_per_group;
            for (var ci = 0u; ci < p.in_per_group; ci++) {
                let a_k = select(vec2<f32>(0.0), vec2<f32>(x[a_at.x], x[a_at.y]), inside);
                let b_k = vec4<f32>(w_at(b_at.x), w_at(b_at.y), w_at(b_at.z), w_at(b_at.w));
                a_at += 1u;
                b_at += p.out_c;
                rank1_update(&acc, a_k, b_k);
            }
        }
    }
    if (p.epilogue != 0u) {
        // Every row of this lane's tile holds the same four output channels. Constant indices
        // keep acc in registers.
        let channels = group * p.out_per_group + cols;
        acc[0] = finish4(acc[0], channels);
        acc[1] = finish4(acc[1], channels);
        acc[2] = finish4(acc[2], channels);
        acc[3] = finish4(acc[3], channels);
        acc[4] = finish4(acc[4], channels);
        acc[5] = finish4(acc[5], channels);
        acc[6] = finish4(acc[6], channels);
        acc[7] = finish4(acc[7], channels);
        acc[8] = finish4(acc[8], channels);
        acc[9] = finish4(acc[9], channels);
        acc[10] = finish4(acc[10], channels);
        acc[11] = finish4(acc[11], channels);
        acc[12] = finish4(acc[12], channels);
        acc[13] = finish4(acc[13], channels);
        acc[14] = finish4(acc[14], channels);
        acc[15] = finish4(acc[15], channels);
    }
    store_lane_tile(Dest(p.out_offset + group * p.out_per_group, p.out_c, p.rows, p.out_per_group), &acc, row0, cols);
}
