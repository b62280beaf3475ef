//! The engine's convolutions (with their bias and ReLU6) against stock candle ops (values and
//! gradients) and against finite differences, on odd sizes, both strides, both padding
//! conventions and both data formats; and a frozen inverted-residual block in one pass against
//! its layers.

use food101::candle_core::{DType, Device, Tensor, Var};
use food101::engine::{self, DataFormat, Pad};

/// Inputs are random multiples of 1/4 and biases lie 1/1024 off them: every pre-activation is
/// then exact whatever the order of summation, and never exactly on a ReLU6 edge, so ours and
/// stock candle mask the same outputs (with rounding, a value within 1e-6 of an edge could
/// fall on either side of it, and a 2100-channel layer has some).
fn quarters(shape: &[usize], mean: f32, offset: f64) -> Var {
    let t = Tensor::randn(mean, 1.0, shape, &Device::Cpu).unwrap();
    let t = ((t * 4.0).unwrap().round().unwrap() / 4.0).unwrap();
    Var::from_tensor(&(t + offset).unwrap()).unwrap()
}

fn randn(shape: &[usize]) -> Var {
    quarters(shape, 0.0, 0.0)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// Value and gradients of `sum(f(inputs) * r)` for a fixed random `r`.
fn value_and_grads(f: &dyn Fn(&[Tensor]) -> Tensor, inputs: &[Var], r: &Tensor) -> (Tensor, Vec<Tensor>) {
    let tensors: Vec<Tensor> = inputs.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&tensors);
    let grads = (&y * r).unwrap().sum_all().unwrap().backward().unwrap();
    (y, inputs.iter().map(|v| grads.get(v.as_tensor()).expect("a gradient").clone()).collect())
}

/// Ours and stock give the same values and gradients (relative to their scale).
fn compare(ours: &dyn Fn(&[Tensor]) -> Tensor, stock: &dyn Fn(&[Tensor]) -> Tensor, inputs: &[Var], what: &str) {
    let probe = stock(&inputs.iter().map(|v| v.as_tensor().detach()).collect::<Vec<_>>());
    let r = Tensor::randn(0f32, 1.0, probe.shape(), &Device::Cpu).unwrap();
    let (y1, g1) = value_and_grads(ours, inputs, &r);
    let (y2, g2) = value_and_grads(stock, inputs, &r);
    assert_eq!(y1.dims(), y2.dims(), "{what}: shape");
    assert!(max_diff(&y1, &y2) < 1e-4, "{what}: values differ by {}", max_diff(&y1, &y2));
    for (i, (a, b)) in g1.iter().zip(&g2).enumerate() {
        let scale = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap().max(1.0);
        assert!(max_diff(a, b) < 1e-4 * scale, "{what}: gradient {i} differs by {}", max_diff(a, b));
    }
}

/// Central finite differences of `sum(f(x) * r)` for a few coordinates of input `which`, with step
/// `eps`: large for linear maps (exact, and above f32 rounding), small near ReLU6 kinks.
fn finite_difference_check(f: &dyn Fn(&[Tensor]) -> Tensor, inputs: &[Var], which: usize, eps: f32, what: &str) {
    let probe = f(&inputs.iter().map(|v| v.as_tensor().detach()).collect::<Vec<_>>());
    let r = Tensor::randn(0f32, 1.0, probe.shape(), &Device::Cpu).unwrap();
    let (_, grads) = value_and_grads(f, inputs, &r);
    let analytic = grads[which].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let base: Vec<Tensor> = inputs.iter().map(|v| v.as_tensor().detach()).collect();
    let flat = base[which].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let loss = |values: &[f32]| -> f64 {
        let mut ins = base.clone();
        ins[which] = Tensor::from_vec(values.to_vec(), base[which].shape(), &Device::Cpu).unwrap();
        // Summed in f64, so that rounding does not swamp the small differences.
        let y = f(&ins).to_dtype(DType::F64).unwrap();
        (y * r.to_dtype(DType::F64).unwrap()).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap()
    };
    for i in (0..flat.len()).step_by((flat.len() / 7).max(1)) {
        let (mut plus, mut minus) = (flat.clone(), flat.clone());
        plus[i] += eps;
        minus[i] -= eps;
        let numeric = (loss(&plus) - loss(&minus)) / (2.0 * eps as f64);
        let err = (numeric - analytic[i] as f64).abs();
        assert!(err < 2e-2 * (1.0 + numeric.abs()), "{what}: d/d[{i}] numeric {numeric} analytic {}", analytic[i]);
    }
}

/// Stock candle, with the padded input cropped to the rows and columns the windows reach: candle's
/// conv2d backward returns a wrongly shaped gradient when a stride-2 window leaves a row unused.
fn stock_conv(x: &Tensor, w: &Tensor, stride: usize, p: Pad, groups: usize) -> Tensor {
    let k = w.dim(2).unwrap();
    let padded = x.pad_with_zeros(2, p[0], p[1]).unwrap().pad_with_zeros(3, p[2], p[3]).unwrap();
    let (_, _, hp, wp) = padded.dims4().unwrap();
    let used = |n: usize| (n - k) / stride * stride + k;
    let cropped = padded.narrow(2, 0, used(hp)).unwrap().narrow(3, 0, used(wp)).unwrap();
    cropped.conv2d(w, 0, stride, 1, groups).unwrap()
}

/// `act(conv + bias)` with stock candle ops.
fn stock_epilogue(conv: Tensor, bias: &Tensor, relu6: bool) -> Tensor {
    let c = bias.dim(0).unwrap();
    let y = conv.broadcast_add(&bias.reshape((1, c, 1, 1)).unwrap()).unwrap();
    if relu6 { y.clamp(0f32, 6f32).unwrap() } else { y }
}

/// A bias that puts outputs on both sides of ReLU6's two edges.
fn bias(c: usize) -> Var {
    quarters(&[c], 2.0, 1.0 / 1024.0)
}

/// Ours against stock candle (values and all gradients) with and without ReLU6, and against
/// finite differences without it (a linear map: a large step is exact). With ReLU6, the mask's
/// correctness shows in the comparison with stock candle, whose clamp has its own backward.
fn check_conv(ours: &dyn Fn(&[Tensor], bool) -> Tensor, stock: &dyn Fn(&[Tensor]) -> Tensor, inputs: &[Var], what: &str) {
    for relu6 in [true, false] {
        let what = format!("{what} relu6={relu6}");
        let stock = |t: &[Tensor]| stock_epilogue(stock(t), &t[t.len() - 1], relu6);
        compare(&|t: &[Tensor]| ours(t, relu6), &stock, inputs, &what);
        if !relu6 {
            for which in 0..inputs.len() {
                finite_difference_check(&|t: &[Tensor]| ours(t, false), inputs, which, 0.1, &what);
            }
        }
    }
}

/// `op` on channels-first `x` run in `format`: the input converted there and the output back, so
/// that both formats compare with the same stock (channels-first) op.
fn in_format(x: &Tensor, format: DataFormat, op: impl Fn(&Tensor) -> Tensor) -> Tensor {
    let first = DataFormat::ChannelsFirst;
    format.convert(&op(&first.convert(x, format).unwrap()), first).unwrap()
}

#[test]
fn depthwise_matches_stock_candle_and_finite_differences() {
    // Channels first: with one column of padding each side stride 1 runs as one flat run over
    // the plane, other paddings row by row.
    // Channels last: 37 channels are two 16-channel vectors and five single channels.
    for (format, c) in [(DataFormat::ChannelsFirst, 5), (DataFormat::ChannelsLast, 5), (DataFormat::ChannelsLast, 37)] {
        for (h, w) in [(7, 9), (8, 6), (5, 5), (4, 37)] {
            for stride in [1, 2] {
                for pad in [[1, 1, 1, 1], [0, 1, 0, 1], [1, 1, 0, 1], [0, 0, 0, 0]] {
                    let inputs = [randn(&[2, c, h, w]), randn(&[c, 1, 3, 3]), bias(c)];
                    let ours = |t: &[Tensor], relu6| {
                        in_format(&t[0], format, |x| engine::depthwise_conv3x3(x, &t[1], &t[2], stride, pad, relu6, format).unwrap())
                    };
                    let stock = |t: &[Tensor]| stock_conv(&t[0], &t[1], stride, pad, c);
                    check_conv(&ours, &stock, &inputs, &format!("depthwise {format:?} {c} channels {h}x{w} stride {stride} pad {pad:?}"));
                }
            }
        }
    }
}

#[test]
fn pointwise_matches_stock_candle_and_finite_differences() {
    // With 2100 output channels a multiply covers 64 columns (the engine's output block), so the
    // 10x13 planes take three blocks, the last of two columns.
    // Channels last, a block holds 62 pixels of 2100 channels: the 390 pixels take seven blocks.
    for format in [DataFormat::ChannelsFirst, DataFormat::ChannelsLast] {
        for (c_out, (h, w)) in [(4, (5, 7)), (4, (33, 32)), (2100, (10, 13))] {
            let inputs = [randn(&[3, 6, h, w]), randn(&[c_out, 6, 1, 1]), bias(c_out)];
            let ours = |t: &[Tensor], relu6| in_format(&t[0], format, |x| engine::pointwise_conv(x, &t[1], &t[2], relu6, format).unwrap());
            let stock = |t: &[Tensor]| t[0].conv2d(&t[1], 0, 1, 1, 1).unwrap();
            check_conv(&ours, &stock, &inputs, &format!("pointwise {format:?} {c_out} channels {h}x{w}"));
        }
    }
}

#[test]
fn dense_conv_matches_stock_candle_and_finite_differences() {
    // The stem's 3x3 stride 2 with Keras' asymmetric padding, and other sizes and paddings. Its
    // input is data: only the weight and bias have gradients.
    for (k, stride, pad, (h, w)) in [(3, 2, [0, 1, 0, 1], (8, 9)), (3, 1, [1, 1, 1, 1], (5, 6)), (2, 2, [0, 0, 0, 0], (7, 7))] {
        let x = Tensor::randn(0f32, 1.0, (2, 3, h, w), &Device::Cpu).unwrap();
        let inputs = [randn(&[4, 3, k, k]), bias(4)];
        let ours = |t: &[Tensor], relu6| engine::conv2d_dense(&x, &t[0], &t[1], stride, pad, relu6).unwrap();
        let stock = |t: &[Tensor]| stock_conv(&x, &t[0], stride, pad, 1);
        check_conv(&ours, &stock, &inputs, &format!("dense {k}x{k} stride {stride} pad {pad:?} on {h}x{w}"));
    }
}

#[test]
fn a_frozen_inverted_residual_block_in_one_pass_matches_its_layers_in_stock_candle() {
    // 256 expanded channels of 64 (or 63) columns make bands of 8 expanded rows, so every plane
    // takes several bands and each band boundary is crossed; 512 channels of 16 columns run the
    // depthwise rows as one flat row (and take bands of 16 rows). One image per thread, plus one.
    let n = rayon::current_num_threads() + 1;
    let cases = [
        // (input channels, expansion, output channels, h, w, stride, pad)
        (32, 8, 32, 20, 64, 1, [1, 1, 1, 1]),
        (32, 8, 24, 21, 63, 2, [1, 1, 1, 1]),
        (32, 8, 24, 20, 64, 2, [0, 1, 0, 1]),
        (64, 8, 64, 30, 16, 1, [1, 1, 1, 1]),
        (64, 8, 40, 31, 16, 2, [1, 1, 0, 1]),
        (256, 1, 16, 20, 64, 1, [1, 1, 1, 1]),
    ];
    for (c_in, expansion, c_out, h, w, stride, pad) in cases {
        let c = c_in * expansion;
        let x = randn(&[n, c_in, h, w]).as_tensor().detach();
        let layer = |c_out: usize, c_in: usize, k: usize| (randn(&[c_out, c_in, k, k]).as_tensor().clone(), bias(c_out).as_tensor().clone());
        let expand = (expansion > 1).then(|| layer(c, c_in, 1));
        let (depthwise, project) = (layer(c, 1, 3), layer(c_out, c, 1));
        let residual = stride == 1 && c_in == c_out;

        let mut stock = x.clone();
        if let Some((w, b)) = &expand {
            stock = stock_epilogue(stock.conv2d(w, 0, 1, 1, 1).unwrap(), b, true);
        }
        stock = stock_epilogue(stock_conv(&stock, &depthwise.0, stride, pad, c), &depthwise.1, true);
        stock = stock_epilogue(stock.conv2d(&project.0, 0, 1, 1, 1).unwrap(), &project.1, false);
        if residual {
            stock = (stock + &x).unwrap();
        }

        let fold = |(w, b): &(Tensor, Tensor)| engine::Folded::new(w, b).unwrap();
        let weights = engine::InvertedResidualWeights {
            expand: expand.as_ref().map(fold),
            depthwise: fold(&depthwise),
            stride,
            pad,
            project: fold(&project),
            residual,
        };
        assert!(engine::runs_in_one_pass(&x).unwrap(), "a batch of one image per thread runs in one pass");
        let ours = engine::inverted_residual(&x, &weights).unwrap();
        let what = format!("block {c_in}->{c}->{c_out} {h}x{w} stride {stride} pad {pad:?}");
        assert_eq!(ours.dims(), stock.dims(), "{what}: shape");
        assert!(max_diff(&ours, &stock) < 1e-4, "{what}: values differ by {}", max_diff(&ours, &stock));
    }
}

#[test]
fn a_trainable_inverted_residual_block_as_one_op_matches_its_layers() {
    // (input channels, expanded, output channels, h, w, stride, pad); no expansion when the
    // expanded channels are the input's (MobileNetV2's block 0).
    let cases = [
        (6, 18, 6, 7, 9, 1, [1, 1, 1, 1]),
        (6, 18, 8, 8, 11, 2, [0, 1, 0, 1]),
        (5, 15, 7, 9, 6, 2, [1, 1, 1, 1]),
        (8, 8, 4, 6, 7, 1, [1, 1, 1, 1]),
    ];
    for format in [DataFormat::ChannelsFirst, DataFormat::ChannelsLast] {
        for (c_in, c, c_out, h, w, stride, pad) in cases {
            let expand = c != c_in;
            let residual = stride == 1 && c_in == c_out;
            let layout = engine::BlockLayout { expand, expanded: c, outputs: c_out, stride, pad, residual, format };
            let mut inputs = vec![randn(&[2, c_in, h, w])];
            if expand {
                inputs.extend([randn(&[c, c_in, 1, 1]), bias(c)]);
            }
            inputs.extend([randn(&[c, 1, 3, 3]), bias(c), randn(&[c_out, c, 1, 1]), bias(c_out)]);
            let ours = |t: &[Tensor]| {
                let weights: Vec<Tensor> = t[1..].iter().step_by(2).map(|w| w.flatten_all().unwrap()).collect();
                let biases: Vec<&Tensor> = t[2..].iter().step_by(2).collect();
                let (weights, biases) = (Tensor::cat(&weights, 0).unwrap(), Tensor::cat(&biases, 0).unwrap());
                in_format(&t[0], format, |x| engine::trainable_inverted_residual(x, &weights, &biases, layout).unwrap())
            };
            // The same layers as separate ops of the engine, each checked against stock candle above.
            let layers = |t: &[Tensor]| {
                in_format(&t[0], format, |x| {
                    let mut y = x.clone();
                    let mut layers = t[1..].chunks(2);
                    if expand {
                        let [w, b] = layers.next().unwrap() else { unreachable!() };
                        y = engine::pointwise_conv(&y, w, b, true, format).unwrap();
                    }
                    let [w, b] = layers.next().unwrap() else { unreachable!() };
                    y = engine::depthwise_conv3x3(&y, w, b, stride, pad, true, format).unwrap();
                    let [w, b] = layers.next().unwrap() else { unreachable!() };
                    y = engine::pointwise_conv(&y, w, b, false, format).unwrap();
                    if residual { (y + x).unwrap() } else { y }
                })
            };
            let what = format!("trainable block {format:?} {c_in}->{c}->{c_out} {h}x{w} stride {stride} pad {pad:?}");
            compare(&ours, &layers, &inputs, &what);
            // With a frozen input (the first trainable block's), the weights' gradients alone.
            let x = inputs[0].as_tensor().detach();
            let with_x = |t: &[Tensor]| [std::slice::from_ref(&x), t].concat();
            compare(&|t: &[Tensor]| ours(&with_x(t)), &|t: &[Tensor]| layers(&with_x(t)), &inputs[1..], &format!("{what}, frozen input"));
        }
    }
}

/// A function of some tensors, as the gradient tests differentiate it.
type Function = Box<dyn Fn(&[Tensor]) -> Tensor + Sync>;

/// Gradients of `sum(f(inputs) * r)` as bits, computed on a pool of `threads` threads.
fn gradient_bits(threads: usize, f: &(dyn Fn(&[Tensor]) -> Tensor + Sync), inputs: &[Var], r: &Tensor) -> Vec<Vec<u32>> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let (_, grads) = value_and_grads(f, inputs, r);
        grads.iter().map(|g| g.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()).collect()
    })
}

fn assert_same_bits(one: Vec<Vec<u32>>, three: Vec<Vec<u32>>, what: &str) {
    for (i, (a, b)) in one.iter().zip(&three).enumerate() {
        let differ = a.iter().zip(b).filter(|(x, y)| x != y).count();
        assert_eq!(differ, 0, "{what}: gradient {i}: {differ} of {} values differ between 1 and 3 threads", a.len());
    }
}

#[test]
fn weight_gradients_are_the_same_bits_on_any_number_of_threads() {
    // A weight gradient sums over images and pixels; its partial sums are grouped the same way
    // whatever the pool, so one thread and three round alike (and training repeats itself).
    // Unrounded inputs (not quarters): a different grouping would round differently.
    let normal = |shape: &[usize]| Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap()).unwrap();
    let (n, c, h, w) = (16, 24, 14, 14);
    for format in [DataFormat::ChannelsFirst, DataFormat::ChannelsLast] {
        let cases: [(&str, Vec<Var>, Function); 2] = [
            ("pointwise", vec![normal(&[n, c, h, w]), normal(&[2 * c, c, 1, 1]), normal(&[2 * c])], Box::new(move |t: &[Tensor]| {
                in_format(&t[0], format, |x| engine::pointwise_conv(x, &t[1], &t[2], true, format).unwrap())
            })),
            ("depthwise", vec![normal(&[n, c, h, w]), normal(&[c, 1, 3, 3]), normal(&[c])], Box::new(move |t: &[Tensor]| {
                in_format(&t[0], format, |x| engine::depthwise_conv3x3(x, &t[1], &t[2], 1, [1, 1, 1, 1], true, format).unwrap())
            })),
        ];
        for (what, inputs, f) in &cases {
            let probe = f(&inputs.iter().map(|v| v.as_tensor().detach()).collect::<Vec<_>>());
            let r = Tensor::randn(0f32, 1.0, probe.shape(), &Device::Cpu).unwrap();
            assert_same_bits(gradient_bits(1, f.as_ref(), inputs, &r), gradient_bits(3, f.as_ref(), inputs, &r), &format!("{what} {format:?}"));
        }
    }
    let x = Tensor::randn(0f32, 1.0, (n, 3, 2 * h, 2 * w), &Device::Cpu).unwrap();
    let inputs = [normal(&[c, 3, 3, 3]), normal(&[c])];
    let stem = |t: &[Tensor]| engine::conv2d_dense(&x, &t[0], &t[1], 2, [0, 1, 0, 1], true).unwrap();
    let r = Tensor::randn(0f32, 1.0, stem(&[inputs[0].as_tensor().detach(), inputs[1].as_tensor().detach()]).shape(), &Device::Cpu).unwrap();
    assert_same_bits(gradient_bits(1, &stem, &inputs, &r), gradient_bits(3, &stem, &inputs, &r), "stem");
}

