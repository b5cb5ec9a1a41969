//! Bidirectional one-layer LSTM with PyTorch's weights and semantics.

use candle_core::{bail, Result, Tensor, D};
use candle_nn::VarBuilder;

/// `nn.LSTM(input_size, hidden_size, num_layers=1, batch_first=True, bidirectional=True)` in
/// inference, from zero initial states: gates in PyTorch's order (input, forget, cell, output),
/// `bias_ih + bias_hh`, the output `(batch, steps, 2·hidden)` with the forward direction first.
///
/// Every step's input projection, for both directions, is one product before the recurrence
/// (candle's own LSTM projects step by step); each step is then one batched product of both
/// directions' states. Sequences are not packed: every batch row runs all `steps` (Kokoro runs
/// one utterance at a time, where packing changes nothing).
#[derive(Debug, Clone)]
pub struct BiLstm {
    /// `[input, 8·hidden]`: forward then reverse `weight_ih`, transposed.
    w_ih_t: Tensor,
    /// `[8·hidden]`: both biases of both directions, summed per direction.
    bias: Tensor,
    /// `[2, hidden, 4·hidden]`: each direction's `weight_hh`, transposed.
    w_hh_t: Tensor,
    input_size: usize,
    hidden_size: usize,
}

impl BiLstm {
    /// Loads `weight_ih_l0` `[4·hidden, input]`, `weight_hh_l0` `[4·hidden, hidden]`,
    /// `bias_ih_l0`, `bias_hh_l0` `[4·hidden]` and the same names with `_reverse`.
    pub fn new(input_size: usize, hidden_size: usize, vb: VarBuilder) -> Result<Self> {
        let gates = 4 * hidden_size;
        let (mut w_ih, mut w_hh, mut bias) = (Vec::new(), Vec::new(), Vec::new());
        for suffix in ["", "_reverse"] {
            w_ih.push(vb.get((gates, input_size), &format!("weight_ih_l0{suffix}"))?);
            w_hh.push(vb.get((gates, hidden_size), &format!("weight_hh_l0{suffix}"))?.t()?);
            let b_ih = vb.get(gates, &format!("bias_ih_l0{suffix}"))?;
            bias.push((b_ih + vb.get(gates, &format!("bias_hh_l0{suffix}"))?)?);
        }
        Ok(Self {
            w_ih_t: Tensor::cat(&w_ih, 0)?.t()?.contiguous()?,
            bias: Tensor::cat(&bias, 0)?,
            w_hh_t: Tensor::stack(&w_hh, 0)?.contiguous()?,
            input_size,
            hidden_size,
        })
    }

    /// `xs`: `(batch, steps, input)`, at least one step; returns `(batch, steps, 2·hidden)`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (batch, steps, input) = xs.dims3().map_err(|e| e.context("LSTM wants (batch, steps, input)"))?;
        if input != self.input_size || steps == 0 {
            bail!(
                "LSTM with input size {} got shape {:?}; expected (batch, steps >= 1, {})",
                self.input_size,
                xs.dims(),
                self.input_size
            );
        }
        let h = self.hidden_size;
        let gx = xs.reshape((batch * steps, input))?.matmul(&self.w_ih_t)?.broadcast_add(&self.bias)?;
        // (batch, steps, direction, gates) -> (steps, direction, batch, gates), the reverse
        // direction's steps flipped, so that step s of both is one contiguous block.
        let gx = gx.reshape((batch, steps, 2, 4 * h))?.permute((1, 2, 0, 3))?;
        let forward = gx.narrow(1, 0, 1)?;
        let reverse = gx.narrow(1, 1, 1)?.contiguous()?.flip(&[0])?;
        let gx = Tensor::cat(&[forward, reverse], 1)?.contiguous()?;

        let mut state_h = Tensor::zeros((2, batch, h), xs.dtype(), xs.device())?;
        let mut state_c = state_h.clone();
        let mut outputs = Vec::with_capacity(steps);
        for step in 0..steps {
            let gates = (gx.get(step)? + state_h.matmul(&self.w_hh_t)?)?;
            let sig = candle_nn::ops::sigmoid(&gates)?;
            let (i, f, o) = (sig.narrow(2, 0, h)?, sig.narrow(2, h, h)?, sig.narrow(2, 3 * h, h)?);
            let g = gates.narrow(2, 2 * h, h)?.tanh()?;
            state_c = ((f * &state_c)? + (i * g)?)?;
            state_h = (o * state_c.tanh()?)?;
            outputs.push(state_h.clone());
        }
        // (steps, direction, batch, hidden): the reverse direction's step s is time steps - 1 - s.
        let hs = Tensor::stack(&outputs, 0)?;
        let forward = hs.narrow(1, 0, 1)?.squeeze(1)?;
        let reverse = hs.narrow(1, 1, 1)?.squeeze(1)?.contiguous()?.flip(&[0])?;
        Tensor::cat(&[forward, reverse], D::Minus1)?.transpose(0, 1)?.contiguous()
    }
}
