"""bvp: does a disentangled (Beta-VAE) latent make a classifier easier to prune?"""

from bvp.resolvers import register_resolvers

register_resolvers()  # conf/'s ${mul:...} and ${join:...}: composing needs nothing but `import bvp`
