"""bvp: does a disentangled (Beta-VAE) latent make a classifier easier to prune?"""
