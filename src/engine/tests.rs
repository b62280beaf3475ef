//! Every kernel writes every element of its output. In unit tests fresh buffers start as NaN
//! ([`super::FRESH`]), so an element a kernel skipped would show up as NaN here; the values
//! themselves are checked against stock candle in `tests/engine.rs`.

use candle_core::{Device, Tensor, Var};

use super::*;

fn var(shape: &[usize]) -> Var {
    Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap()).unwrap()
}

fn assert_finite(t: &Tensor, what: &str) {
    let values = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let missing = values.iter().filter(|v| !v.is_finite()).count();
    assert_eq!(missing, 0, "{what}: {missing} of {} elements never written", values.len());
}

/// The output and the gradient of every input of `sum(f(x, w, b) * r)`.
fn check(what: &str, x: &Var, w: &Var, b: &Var, f: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor) {
    let y = f(x.as_tensor(), w.as_tensor(), b.as_tensor());
    assert_finite(&y, what);
    let r = Tensor::randn(0f32, 1.0, y.shape(), &Device::Cpu).unwrap();
    let grads = (&y * r).unwrap().sum_all().unwrap().backward().unwrap();
    for (name, v) in [("input", x), ("weight", w), ("bias", b)] {
        if let Some(g) = grads.get(v.as_tensor()) {
            assert_finite(g, &format!("{what}: {name} gradient"));
        }
    }
}

#[test]
fn every_kernel_writes_its_whole_output() {
    for format in [DataFormat::ChannelsFirst, DataFormat::ChannelsLast] {
        for (stride, pad, (h, w)) in [(1, [1, 1, 1, 1], (7, 9)), (2, [0, 1, 0, 1], (8, 11)), (2, [1, 1, 1, 1], (13, 6))] {
            let nchw = var(&[3, 70, h, w]);
            let x = Var::from_tensor(&DataFormat::ChannelsFirst.convert(nchw.as_tensor(), format).unwrap()).unwrap();
            let what = format!("depthwise {format:?} stride {stride} on {h}x{w}");
            check(&what, &x, &var(&[70, 1, 3, 3]), &var(&[70]), |x, w, b| depthwise_conv3x3(x, w, b, stride, pad, true, format).unwrap());
            let what = format!("pointwise {format:?} on {h}x{w}");
            check(&what, &x, &var(&[33, 70, 1, 1]), &var(&[33]), |x, w, b| pointwise_conv(x, w, b, true, format).unwrap());
        }
    }
    // 2100 output channels: the channels-first multiply writes a 10x13 plane in three blocks of columns.
    let planes = var(&[2, 6, 10, 13]);
    check("pointwise in blocks of columns", &planes, &var(&[2100, 6, 1, 1]), &var(&[2100]), |x, w, b| pointwise_conv(x, w, b, true, DataFormat::ChannelsFirst).unwrap());
    let image = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 15, 17), &Device::Cpu).unwrap()).unwrap();
    check("dense 3x3 stride 2", &image, &var(&[8, 3, 3, 3]), &var(&[8]), |x, w, b| conv2d_dense(&x.detach(), w, b, 2, [0, 1, 0, 1], true).unwrap());
}

#[test]
fn the_fused_block_writes_its_whole_output() {
    let fold = |c_out: usize, c_in: usize, k: usize| Folded::new(var(&[c_out, c_in, k, k]).as_tensor(), var(&[c_out]).as_tensor()).unwrap();
    for (stride, residual, (h, w)) in [(1, true, (9, 13)), (2, false, (12, 7))] {
        let weights = InvertedResidualWeights {
            expand: Some(fold(96, 16, 1)),
            depthwise: fold(96, 1, 3),
            stride,
            pad: [1, 1, 1, 1],
            project: fold(16, 96, 1),
            residual,
        };
        let x = Tensor::randn(0f32, 1.0, (rayon::current_num_threads() + 1, 16, h, w), &Device::Cpu).unwrap();
        assert_finite(&inverted_residual(&x, &weights).unwrap(), &format!("block stride {stride} on {h}x{w}"));
    }
}

#[test]
fn the_trainable_block_writes_its_whole_output_and_gradients() {
    let (c_in, c) = (6, 18);
    for format in [DataFormat::ChannelsFirst, DataFormat::ChannelsLast] {
        for (stride, c_out, pad, (h, w)) in [(1, 6, [1, 1, 1, 1], (7, 9)), (2, 8, [0, 1, 0, 1], (8, 11))] {
            let layout = BlockLayout { expand: true, expanded: c, outputs: c_out, stride, pad, residual: c_out == c_in && stride == 1, format };
            let x = Var::from_tensor(&DataFormat::ChannelsFirst.convert(var(&[2, c_in, h, w]).as_tensor(), format).unwrap()).unwrap();
            let (weights, biases) = (var(&[c * c_in + 9 * c + c_out * c]), var(&[2 * c + c_out]));
            let what = format!("trainable block {format:?} stride {stride}");
            check(&what, &x, &weights, &biases, |x, w, b| trainable_inverted_residual(x, w, b, layout).unwrap());
        }
    }
}

/// The stencil kernel the CPU runs (AVX-512 here where the CPU has it) against the portable
/// one, on runs of every length around a vector, from every alignment, both layouts, with and
/// without row edges.
#[test]
fn every_stencil_kernel_gives_the_portable_kernels_outputs() {
    use super::depthwise_nchw::{nine_taps, nine_taps_portable, sum_edges_again, Edges, Run};
    use super::epilogue::Epilogue;
    let x: Vec<f32> = Tensor::randn(0f32, 1.0, 400, &Device::Cpu).unwrap().to_vec1().unwrap();
    let w: Vec<f32> = Tensor::randn(0f32, 1.0, 9, &Device::Cpu).unwrap().to_vec1().unwrap();
    let e = Epilogue::new(0.1, true);
    for n in [1, 15, 16, 17, 31, 33, 64, 100] {
        for offset in 0..16 {
            for (run, p) in [(Run::Stride1(None), 11), (Run::Stride1(Some(Edges { width: 11, column: 3 })), 11), (Run::Stride2, 13)] {
                let taps = match run {
                    Run::Stride1(_) => [0, 1, 2, p, p + 1, p + 2, 2 * p, 2 * p + 1, 2 * p + 2],
                    Run::Stride2 => [0, 150, 1, 40, 200, 41, 80, 250, 81],
                }
                .map(|start| &x[start..start + n + 2]);
                let mut buffer = vec![f32::NAN; n + 32];
                let ours = &mut buffer[offset..offset + n];
                nine_taps(ours, taps, &w, e, run);
                let mut expected = vec![0f32; n];
                nine_taps_portable(&mut expected, taps, &w, e);
                if let Run::Stride1(Some(edges)) = run {
                    sum_edges_again(&mut expected, taps, &w, e, edges);
                }
                for (i, (a, b)) in ours.iter().zip(&expected).enumerate() {
                    assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{run:?}, {n} outputs from {offset}: output {i} is {a}, not {b}");
                }
                assert!(buffer[..offset].iter().chain(&buffer[offset + n..]).all(|v| v.is_nan()), "{run:?}: wrote outside its output");
            }
        }
    }
}
