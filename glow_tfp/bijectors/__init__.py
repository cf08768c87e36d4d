"""Glow's layers as `tfp.bijectors.Bijector`s over [H, W, C] images."""

from glow_tfp.bijectors.actnorm import ActNorm
from glow_tfp.bijectors.base import FusedBijector
from glow_tfp.bijectors.compose import Invert
from glow_tfp.bijectors.compose import Sequential
from glow_tfp.bijectors.coupling import Coupling
from glow_tfp.bijectors.flow_step import FlowStep
from glow_tfp.bijectors.invertible_conv import Invertible1x1Conv
from glow_tfp.bijectors.permute import ChannelPermutation
from glow_tfp.bijectors.prior import TopPrior
from glow_tfp.bijectors.split import Split
from glow_tfp.bijectors.squeeze import Squeeze
